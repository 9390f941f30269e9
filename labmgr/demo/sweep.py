"""Restore every hour of the day in the lab and run the probes there, one verdict line per hour.

The latest hour passing says little about the others: a backup that quietly
lost a row at 14:00 and was fine again at 15:00 only shows when 14:00 itself
is restored. This is `labmgr lab restore` and `labmgr probe` hour after hour
(the same core calls a drill plan with a list of points makes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from ..lab.probing import probe_lab
from ..lab.restore import lab_restore
from ..probes import load_probes
from ..probes.result import ProbeResult
from ..progress import Reporter
from ..spec import Environment
from ..timeparse import format_point


@dataclass
class HourVerdict:
    hour: datetime
    results: list[ProbeResult]
    restore_seconds: float
    probe_seconds: float
    failed: list[ProbeResult] = field(init=False)

    def __post_init__(self) -> None:
        self.failed = [r for r in self.results if not r.passed and r.severity == "critical"]

    @property
    def passed(self) -> bool:
        return not self.failed

    def line(self) -> str:
        head = (f"  {format_point(self.hour):<18} {'ok  ' if self.passed else 'FAIL'}  "
                f"{sum(r.passed for r in self.results)}/{len(self.results)} probes  "
                f"(restore {self.restore_seconds:4.1f} s, probes {self.probe_seconds:4.1f} s)")
        return head + "".join(f"\n      {r.name}: {r.detail}" for r in self.failed)


def hourly_probes(probes: Path, env: Environment) -> list[str]:
    """Every probe but isolation: the lab's isolation does not change with the hour restored
    (the drill checks it), and skipping it saves seconds an hour."""
    return sorted({p.name for p in load_probes(probes, env) if p.kind != "isolation"})


def sweep(lab: str, env: Environment, probes: Path, hours: list[datetime], reporter: Reporter,
          say: Callable[[str], None]) -> list[HourVerdict]:
    verdicts = []
    names = hourly_probes(probes, env)
    with reporter.step(f"sweep: restore and probe {len(hours)} hours", total=len(hours)) as step:
        for hour in hours:
            step.update(label=f"sweep: hour {format_point(hour)}")
            restored = lab_restore(lab, format_point(hour))
            probed = probe_lab(lab, probes, only=names)
            verdict = HourVerdict(hour, probed.results, restored.seconds.get("stage", 0) +
                                  restored.seconds.get("restore", 0), probed.stages["probes"])
            say(verdict.line())
            verdicts.append(verdict)
            step.advance()
    return verdicts
