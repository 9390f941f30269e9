"""The history store and the report it feeds (real SQLite, no libvirt)."""

from __future__ import annotations

from types import SimpleNamespace

import lxml.html

from labmgr.history import History
from labmgr.report import render_report


def filled(tmp_path):
    history = History(tmp_path)
    history.record_lab("shop-1", "shop", "20261121T060000Z", "2026-11-21T06:00:00+00:00",
                       {"network": 0.1, "clone": 0.1, "boot": 31.2})
    for hour in ("07", "08"):
        history.record_restore("shop-1", "shop", {
            "at": f"2026-11-21T{hour}:30Z", "requested": f"2026-11-21T{hour}:30Z",
            "dumps": {"db/invoices": f"2026-11-21T{hour}:00Z"}, "skew_seconds": 120.0,
            "restored_at": f"2026-11-21T09:{hour}Z", "seconds": {"restore": 9.5}})
    result = SimpleNamespace(name="no gaps | ever", server="db", kind="sequence_gaps", severity="critical",
                             passed=False, seconds=0.4, detail="missing invoice numbers: 7", output_tail="")
    history.record_probe_run("shop-1", "shop", "2026-11-21T08:30Z", "2026-11-21T09:10Z", "2026-11-21T09:11Z",
                             1, [result])
    history.add_signoff("shop-1", "shop", "2026-11-21T08:30Z", "bob", "<script>alert(1)</script> checked")
    return history


def test_evidence_reads_back_what_was_recorded(tmp_path) -> None:
    with filled(tmp_path) as history:
        evidence = history.evidence("shop-1", "shop")
        assert evidence.snapshot == "20261121T060000Z" and evidence.timings["boot"] == 31.2
        assert [r.point for r in evidence.restores] == ["2026-11-21T07:30Z", "2026-11-21T08:30Z"]
        assert evidence.runs[0].results[0].detail == "missing invoice numbers: 7"
        assert evidence.signoffs[0].user == "bob"
        assert history.evidence("shop-2", "shop").restores == []


def test_markdown_report(tmp_path) -> None:
    with filled(tmp_path) as history:
        text = render_report(history.evidence("shop-1", "shop"), "md", "2026-11-21T10:00Z")
    assert "0 passed, 1 failed" in text and "**FAIL**" in text
    assert "no gaps \\| ever" in text                    # a pipe cannot break the table
    assert "| **lab up, total** | **31.4** |" in text
    assert "db/invoices @ 2026-11-21T07:00Z" in text and "2 min" in text


def test_html_report_escapes_what_people_typed(tmp_path) -> None:
    with filled(tmp_path) as history:
        text = render_report(history.evidence("shop-1", "shop"), "html", "2026-11-21T10:00Z")
    assert "<script>" not in text and "&lt;script&gt;" in text
    page = lxml.html.fromstring(text)
    assert page.findtext(".//h1").startswith("DR drill report: shop")
    assert any(td.text_content() == "FAIL" for td in page.iter("td"))
