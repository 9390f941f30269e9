"""The DR-day report: first the verdict (were the backups proven, what failed, each objective met
or missed), then what was restored, how long each stage took, what the probes found and who
signed off. Markdown or HTML (with SVG charts: ``charts.py``), or the HTML printed to PDF
(``pdf.py``), from the environment's history.

Nothing secret goes in: no keys, identities, passwords or spec paths; only
names, times, checksums' verdicts and what people wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import Markup

from ..atomic import atomic_write
from ..history import LabEvidence
from ..objectives import format_duration
from . import charts
from .pdf import html_to_pdf
from ..timeparse import parse_point
from .evidence import count_table, data_uri
from .verdict import latest_runs, verdict_of

FORMATS = ("md", "html", "pdf")
TREND_DRILLS = 30       # drills shown in the RTO trend


@lru_cache(maxsize=2)
def _templates(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("labmgr.report", "templates"),
                              autoescape=autoescape, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def render_report(evidence: LabEvidence, fmt: str, generated_at: str,
                  row_counts: dict[str, list] | None = None) -> str:
    """The report as Markdown (``md``) or one self-contained HTML page (``html``); ``row_counts``
    ({table: [(hour, rows)]}, from the hours' data profiles) adds its chart to the HTML."""
    env = _templates(fmt == "html")
    if row_counts is None:       # the hours' data profiles, as the history keeps them
        row_counts = {table: [(parse_point(point), rows) for point, rows in hours if point]
                      for table, hours in evidence.row_counts.items()}
    total = sum(evidence.timings.values())
    passed = sum(1 for run in evidence.runs for r in run.results if r.passed)
    failed = sum(1 for run in evidence.runs for r in run.results if not r.passed)
    return env.get_template(f"report.{fmt}.j2").render(
        e=evidence, generated_at=generated_at, total=total, passed=passed, failed=failed,
        md=_md_cell, verdict=_verdict, shares=share_rows(evidence), duration=format_duration,
        data_uri=data_uri, counts=count_table(evidence.row_counts),
        refused=sum(1 for event in evidence.share_events if event.event == "refused"),
        v=verdict_of(evidence), charts=pictures(evidence, row_counts) if fmt == "html" else {})


def write_reports(evidence: LabEvidence, stem: Path, formats: list[str], generated_at: str) -> list[Path]:
    """``stem``.md, .html, .pdf as asked; the PDF is the HTML page printed (it comes last: a
    machine without Chromium still gets the others before the error)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    written, pages = [], {}
    for fmt in sorted(formats, key=FORMATS.index):
        path = stem.with_name(f"{stem.name}.{fmt}")
        page = pages.get(fmt) or render_report(evidence, "html" if fmt == "pdf" else fmt, generated_at)
        pages["pdf" if fmt == "html" else fmt] = page          # the PDF prints the HTML just written
        if fmt == "pdf":
            html_to_pdf(page, path)
        else:
            atomic_write(path, page)
        written.append(path)
    return written


def pictures(evidence: LabEvidence, row_counts: dict | None = None) -> dict[str, Markup]:
    """The HTML report's charts by name (grid, rto, rows); one with nothing to draw is left out."""
    runs = latest_runs(evidence)
    points = sorted(runs, key=lambda point: (point != "", point))
    probes = list(dict.fromkeys(f"{r.name} ({r.server})" for run in runs.values() for r in run.results))
    status = {(f"{r.name} ({r.server})", point): "pass" if r.passed else "fail" if r.severity == "critical"
              else "warn" for point, run in runs.items() for r in run.results}
    shown = [d for d in evidence.drills[-TREND_DRILLS:] if d.stages]
    drills = [(d.started_at, d.stages) for d in shown]
    drill = evidence.drill
    objective = (drill.objectives if drill and drill.objectives else evidence.objectives).get("rto")
    drawn = {"grid": charts.probe_grid_svg(points, probes, status),
             "rto": charts.rto_trend_svg(drills, objective, {i for i, d in enumerate(shown) if d.exit_code}),
             "rows": charts.row_counts_svg(row_counts or {})}
    return {name: Markup(svg) for name, svg in drawn.items() if svg}


@dataclass
class ShareRow:
    share: str
    person: str
    opened: str = ""
    pages: int = 0
    last: str = ""
    signed: str = ""


def share_rows(evidence: LabEvidence) -> list[ShareRow]:
    """One row per person of each share: when their link was first opened, pages, last seen, verdict."""
    rows: dict[tuple[str, str], ShareRow] = {}
    for event in evidence.share_events:
        if not event.person:
            continue
        row = rows.setdefault((event.share, event.person), ShareRow(event.share, event.person))
        row.last = event.at
        if event.event == "opened" and not row.opened:
            row.opened = event.at
        elif event.event == "page":
            row.pages += 1
        elif event.event == "signoff":
            row.signed = _verdict(event.detail.split(":", 1)[0])
    return list(rows.values())


def _verdict(verdict: str) -> str:
    return {"right": "data right", "wrong": "something is wrong"}.get(verdict, "")


def _md_cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")
