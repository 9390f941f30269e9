"""The neutral result of one drill: what the probe runner fills and every notifier reads.

Nothing here knows about HTTP, JUnit or Prometheus; the notifiers in this package
turn a :class:`RunSummary` into their own format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..objectives import Judged
from ..timeparse import utc

CRITICAL = "critical"
WARNING = "warning"
SEVERITIES = (CRITICAL, WARNING)

#: exit codes of a drill
EXIT_PASSED = 0       # every probe passed
EXIT_PROBE_FAILED = 1  # at least one probe failed
EXIT_NOT_RUN = 2      # the lab or the tool could not run the probes
EXIT_OBJECTIVE_MISSED = 3  # every probe passed, but a recovery objective (RTO, RPO) was missed


@dataclass
class ProbeResult:
    """One probe on one server of the lab."""

    name: str
    server: str
    kind: str
    severity: str  # "critical" | "warning"
    passed: bool
    seconds: float
    detail: str
    output_tail: str = ""
    value: str | None = None  # the number a compare_previous probe read (kept for the next point)


@dataclass
class RunSummary:
    """One drill: a point in time restored into a lab and probed."""

    environment: str
    lab: str
    point: str  # ISO point in time restored, e.g. "2026-11-21T08:00Z"
    started_at: datetime
    finished_at: datetime
    stages: dict[str, float]  # capture, clone, boot, inject, restore, probes -> seconds
    results: list[ProbeResult]
    exit_code: int  # 0 all passed, 1 a probe failed, 2 the lab/tool could not run them, 3 an objective missed
    error: str = ""  # when exit_code == 2
    rpo_seconds: float | None = None
    mutation: dict | None = None  # probe --mutate in the drill (plan 'mutate: true'): caught, applied, blind
    objectives: list[Judged] = field(default_factory=list)  # each declared objective against what was measured

    @property
    def passed(self) -> bool:
        """The drill as a whole succeeded (exit code 0)."""
        return self.exit_code == EXIT_PASSED

    @property
    def failed_results(self) -> list[ProbeResult]:
        return [r for r in self.results if not r.passed]

    @property
    def duration_seconds(self) -> float:
        return max(0.0, (utc(self.finished_at) - utc(self.started_at)).total_seconds())

    def headline(self) -> str:
        """One line for a human: what ran and how it ended."""
        where = f"{self.environment} (lab {self.lab}, point {self.point})"
        if self.exit_code == EXIT_PASSED:
            return f"labmgr drill passed: {where}, {len(self.results)} probes"
        if self.exit_code == EXIT_PROBE_FAILED:
            failed = self.failed_results
            return (f"labmgr drill FAILED: {where}, {len(failed)} of {len(self.results)} "
                    f"probes failed")
        if self.exit_code == EXIT_OBJECTIVE_MISSED:
            missed = "; ".join(j.describe() for j in self.objectives if not j.met)
            return f"labmgr drill MISSED an objective: {where}: {missed}"
        return f"labmgr drill could not run: {where}: {self.error or 'unknown error'}"


def iso(moment: datetime) -> str:
    """``moment`` as ISO 8601 in UTC with a ``Z``, to the second."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
