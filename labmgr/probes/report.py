"""Probe results as the command line reports them: a summary, JSON, an exit code (JUnit: labmgr.notify)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .result import ProbeResult

PASSED, FAILED, ERROR = 0, 1, 2     # exit codes: all critical probes passed / a critical probe failed / error


def exit_code(results: list[ProbeResult]) -> int:
    """0 when every critical probe passed (failed warnings are reported, not fatal), else 1."""
    return FAILED if any(not r.passed and r.severity == "critical" for r in results) else PASSED


def summary_lines(results: list[ProbeResult]) -> list[str]:
    """One line per probe and a total: ``FAIL  invoice-numbers (db, sequence_gaps, 0.4 s): missing ...``."""
    lines = []
    for r in results:
        mark = "ok  " if r.passed else ("FAIL" if r.severity == "critical" else "WARN")
        lines.append(f"{mark}  {r.name} ({r.server}, {r.kind}, {r.seconds:.1f} s): {r.detail}")
    failed = [r for r in results if not r.passed]
    critical = sum(1 for r in failed if r.severity == "critical")
    lines.append(f"{len(results) - len(failed)} of {len(results)} probes passed"
                 + (f"; {critical} critical and {len(failed) - critical} warning failures" if failed else ""))
    return lines


def to_json(results: list[ProbeResult], lab: str | None = None, point: str | None = None) -> str:
    return json.dumps({"lab": lab, "point": point, "passed": exit_code(results) == PASSED,
                       "results": [asdict(r) for r in results]}, indent=2)


def write(path: Path | str, text: str) -> None:
    Path(path).write_text(text)
