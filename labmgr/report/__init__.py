"""The DR-day report: what was restored, how long each stage took, what the probes
found and who signed off. Markdown or HTML, from the environment's history.

Nothing secret goes in: no keys, identities, passwords or spec paths; only
names, times, checksums' verdicts and what people wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jinja2

from ..history import LabEvidence
from .evidence import count_table, data_uri

FORMATS = ("md", "html")


@lru_cache(maxsize=2)
def _templates(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("labmgr.report", "templates"),
                              autoescape=autoescape, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def render_report(evidence: LabEvidence, fmt: str, generated_at: str) -> str:
    env = _templates(fmt == "html")
    total = sum(evidence.timings.values())
    passed = sum(1 for run in evidence.runs for r in run.results if r.passed)
    failed = sum(1 for run in evidence.runs for r in run.results if not r.passed)
    return env.get_template(f"report.{fmt}.j2").render(
        e=evidence, generated_at=generated_at, total=total, passed=passed, failed=failed,
        md=_md_cell, verdict=_verdict, shares=share_rows(evidence),
        data_uri=data_uri, counts=count_table(evidence.row_counts),
        refused=sum(1 for event in evidence.share_events if event.event == "refused"))


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
