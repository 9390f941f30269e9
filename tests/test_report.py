"""The history store and the report it feeds (real SQLite, no libvirt)."""

from __future__ import annotations

from types import SimpleNamespace

import lxml.etree
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


# the verdict and the pictures -----------------------------------------------------
def test_the_verdict_comes_first(tmp_path) -> None:
    from report_history import drilled

    evidence = drilled(tmp_path, failing_hour=5, rpo="3h")
    text = render_report(evidence, "md", "2026-11-21T08:00:00Z")
    assert text.split("\n")[4] == "> **NOT PROVEN: 1 problem; 6 points in time restored, 22 of 24 probes passed**"
    assert "> - no-invoice-gaps on db at 2026-11-21T05:00:00Z: missing invoice numbers: 1040-1052" in text
    assert "> RPO 3h against 3h: met, 0 s to spare" in text         # hour 4 is the newest point that passed
    page = lxml.html.fromstring(render_report(evidence, "html", "now"))
    body = [child for child in page.find("body") if child.tag not in ("h1", "p")]
    assert body[0].get("id") == "verdict" and "verdict-failed" in body[0].get("class")


def test_verdicts_of_labs_no_drill_made(tmp_path) -> None:
    from labmgr.report.verdict import verdict_of

    with filled(tmp_path) as history:
        evidence = history.evidence("shop-1", "shop")
        history.record_probe_run("shop-1", "shop", "2026-11-21T08:30Z", "2026-11-21T09:20Z", "2026-11-21T09:21Z",
                                 0, [SimpleNamespace(name="no gaps | ever", server="db", kind="sequence_gaps",
                                                     severity="critical", passed=True, seconds=0.4, detail="none",
                                                     output_tail="")])
        fixed = history.evidence("shop-1", "shop")
        history.add_signoff("shop-1", "shop", "2026-11-21T08:30Z", "carol", "invoice 11 missing", verdict="wrong")
        doubted = history.evidence("shop-1", "shop")
    assert verdict_of(evidence).state == "failed"
    fixed.objectives = {"rto": 3600, "rpo": 600}            # the spec's: judged on what the lab measured
    verdict = verdict_of(fixed)
    assert verdict.state == "missed" and verdict.notes == ["2026-11-21T07:30Z was restored but never probed"]
    rto, rpo = verdict.objectives
    assert rto.met and rto.measured == 31.4 + 2 * 9.5 + 60 + 60
    assert not rpo.met and rpo.measured == 68 * 60           # 08:30 restored at 09:08 from its 08:00 dump
    assert verdict_of(doubted).failures == ['carol signed off "something is wrong" at 2026-11-21T08:30Z: '
                                           'invoice 11 missing']
    fixed.restores = []
    assert verdict_of(fixed).failures[0].startswith("no point in time was restored")


def test_row_counts_chart_on_synthetic_data() -> None:
    from datetime import datetime, timedelta, timezone

    from labmgr.report.charts import row_counts_svg

    start = datetime(2026, 11, 21, tzinfo=timezone.utc)
    series = {"db/shop.invoices": [(start + timedelta(hours=h), 1000 + 40 * h) for h in range(6)],
              "db/shop.customers": [(start + timedelta(hours=h), 310) for h in reversed(range(6))], "db/empty": []}
    svg = row_counts_svg(series)
    root = lxml.etree.fromstring(svg.encode())
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("class") == "chart"
    assert float(root.get("width").removesuffix("pt")) > 200 and root.get("viewBox")
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "db/shop.invoices" in texts and "db/shop.customers" in texts and "db/empty" not in texts
    assert "Row counts at each hour" in texts and "rows" in texts
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert all(i.startswith("rows-") for i in ids) and len(ids) == len(set(ids))
    assert row_counts_svg({}) == "" and row_counts_svg({"db/t": []}) == ""
    assert svg == row_counts_svg(series)                      # the same data draws the same picture
