"""The HTML report in a real browser (Debian's chromium through selenium) and its PDF (Chromium's print).

The history is recorded through labmgr's own API (earlier drills, this lab's restores, probe runs,
sign-off, drill with objectives) and read back as `labmgr report` does; no VM is needed. The page's
charts must be drawn and sized, every image loaded, and the verdict visible without scrolling.
With LABMGR_SCREENSHOTS=DIR the first screen is saved there (docs/screenshots/report*.png).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from labmgr.report import render_report, write_reports

from chromium import banner_in_first_screen, browser, open_report  # noqa: F401 (browser: a fixture)
from helpers import labmgr
from report_history import LAB, drilled, row_counts

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("case", ["failed", "proven"])
def test_the_report_in_a_browser(browser, tmp_path, case) -> None:
    failing = case == "failed"
    evidence = drilled(tmp_path, failing_hour=3 if failing else None, rpo="2h" if failing else "3h")
    page = tmp_path / "report.html"
    page.write_text(render_report(evidence, "html", "2026-11-21T08:00:00Z", row_counts()))
    seen = open_report(browser, page)

    assert banner_in_first_screen(seen), seen
    banner = browser.find_element("id", "verdict")
    if failing:
        assert "verdict-failed" in banner.get_attribute("class")
        assert banner.text.startswith("NOT PROVEN: 3 problems; 6 points in time restored, 20 of 24 probes passed")
        assert "no-invoice-gaps on db at 2026-11-21T03:00:00Z: missing invoice numbers" in banner.text
        assert "RPO 5h against 2h: MISSED by 3h" in banner.text
    else:
        assert "verdict-proven" in banner.get_attribute("class")
        assert banner.text.startswith("PROVEN: 6 points in time restored, every critical probe passed")
        assert "RPO 2h against 3h: met, 1h to spare" in banner.text
    # every chart drawn, at a readable size; every image (none yet but the page's own) loaded
    assert [c[0] for c in seen["charts"]] == ["chart-grid", "chart-rto", "chart-rows"], seen["charts"]
    assert all(w > 250 and h > 120 for _, _, _, w, h in seen["charts"]), seen["charts"]
    assert all(complete and natural > 0 for complete, natural in seen["images"]), seen["images"]
    shots = Path(os.environ.get("LABMGR_SCREENSHOTS") or tmp_path)
    browser.save_screenshot(str(shots / f"report-{case}.png"))
    if failing:
        browser.execute_script("document.getElementById('chart-grid').scrollIntoView()")
        browser.save_screenshot(str(shots / "report-charts.png"))


def test_the_heat_map_marks_each_failed_hour(tmp_path) -> None:
    text = render_report(drilled(tmp_path, failing_hour=4), "html", "now", row_counts())
    grid = re.search(r'<figure class="chart" id="chart-grid">(.*?)</figure>', text, re.S)[1]
    # two failed hours of one critical probe, one failed warning, and one square of each in the legend
    assert grid.count("fill: #c62828") == 2 + 1 and grid.count("fill: #f9a825") == 1 + 1
    assert len(re.findall(r"\bid=\"(grid-[^\"]+)\"", text)) == len(set(re.findall(r"\bid=\"(grid-[^\"]+)\"", text)))


def test_the_pdf_is_the_same_report(tmp_path) -> None:
    evidence = drilled(tmp_path, failing_hour=3, rpo="2h")
    written = write_reports(evidence, tmp_path / "out" / LAB, ["pdf", "md", "html"], "2026-11-21T08:00:00Z")
    assert [p.suffix for p in written] == [".md", ".html", ".pdf"]
    pdf = (tmp_path / "out" / f"{LAB}.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and f"/Title (DR drill report: shop / lab {LAB})".encode() in pdf
    assert re.search(rb"/MediaBox \[0 0 59[45]\.\d* 84[12]\.\d*\]", pdf)          # A4
    assert int(re.search(rb"/Count (\d+)", pdf)[1]) >= 2
    # the command line: --pdf alone writes only the PDF
    result = labmgr("report", LAB, "--spec", str(tmp_path / "shop.yaml"), "--pdf", str(tmp_path / "cli.pdf"))
    assert result.returncode == 0 and result.stdout == f"PDF written to {tmp_path / 'cli.pdf'}\n", result.stderr
    assert (tmp_path / "cli.pdf").read_bytes().startswith(b"%PDF-")


def test_without_chromium_the_pdf_is_one_error_line(tmp_path, monkeypatch) -> None:
    drilled(tmp_path)
    monkeypatch.setenv("LABMGR_CHROMIUM", "no-such-browser")
    result = labmgr("report", LAB, "--spec", str(tmp_path / "shop.yaml"), "--pdf", str(tmp_path / "x.pdf"))
    errors = [line for line in result.stderr.splitlines() if line.startswith("labmgr: error:")]
    assert result.returncode == 2 and len(errors) == 1 and "no Chromium" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.pdf").exists()
