"""The report's first words: did this lab (or the drill that made it) prove the backups, and what failed.

The backups are *proven* when at least one point in time was restored and, at every point
restored, the newest probe run there passed its critical probes; nobody who signed off said
"something is wrong"; and the drill that made the lab (if one did) exited 0. Objectives come from
that drill (judged when it ran) or else from the spec, judged here on what the lab measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ..history import LabEvidence, ProbeRun
from ..objectives import Judged, judge
from ..timeparse import parse_point

LISTED = 8          # failures named in the banner; the rest are counted


@dataclass
class Verdict:
    state: str                      # proven | missed (proven, but an objective missed) | failed
    headline: str
    failures: list[str] = field(default_factory=list)
    more: int = 0                   # failures not listed
    notes: list[str] = field(default_factory=list)     # not fatal: warning probes failed, points never probed
    objectives: list[Judged] = field(default_factory=list)


def latest_runs(evidence: LabEvidence) -> dict[str, ProbeRun]:
    """The newest probe run at each point (a run again at a point replaces the earlier one)."""
    return {run.point: run for run in evidence.runs}


def verdict_of(evidence: LabEvidence) -> Verdict:
    runs = latest_runs(evidence)
    drill = evidence.drill
    results = [(point, r) for point, run in runs.items() for r in run.results]
    failed = [f"{r.name} on {r.server} at {point or 'the clean clone'}: {r.detail}"
              for point, r in results if not r.passed and r.severity == "critical"]
    notes = [f"warning probe {r.name} on {r.server} at {point or 'the clean clone'} failed: {r.detail}"
             for point, r in results if not r.passed and r.severity != "critical"]
    failed += [f"{s.user} signed off \"something is wrong\" at {s.point or 'the clean clone'}: {s.note}"
               for s in evidence.signoffs if s.verdict == "wrong"]
    objectives = drill.judged() if drill and drill.objectives else _judged_here(evidence, runs)
    restored = {r.point for r in evidence.restores}
    passed = sum(1 for _, r in results if r.passed)
    if drill and drill.exit_code == 2:
        failed.insert(0, f"the drill could not run: {drill.error or 'unknown error'}")
    elif drill and drill.exit_code == 1 and drill.error:        # a bad dump
        failed.insert(0, f"the drill found a bad backup: {drill.error}")
    if not restored:
        failed.insert(0, "no point in time was restored: probes of the clean clone prove nothing about backups")
    elif not runs.keys() & restored:
        failed.insert(0, "no probes ran at a restored point")
    notes += [f"{point} was restored but never probed" for point in sorted(restored - runs.keys())]
    missed = [j for j in objectives if not j.met]
    points = f"{len(restored)} point{'s' if len(restored) != 1 else ''} in time restored"
    if failed:
        state, headline = "failed", f"NOT PROVEN: {len(failed)} problem{'s' if len(failed) > 1 else ''}; " \
                                    f"{points}, {passed} of {len(results)} probes passed"
    elif missed:
        state, headline = "missed", f"PROVEN, BUT AN OBJECTIVE WAS MISSED: {points}, every critical probe passed"
    else:
        state, headline = "proven", f"PROVEN: {points}, every critical probe passed ({passed} of {len(results)})"
    return Verdict(state, headline, failed[:LISTED], max(0, len(failed) - LISTED), notes, objectives)


def _judged_here(evidence: LabEvidence, runs: dict[str, ProbeRun]) -> list[Judged]:
    """The spec's objectives for a lab no drill made: RTO = lab up + restores + probe runs; RPO = when
    the newest point whose probes passed was restored, minus its oldest dump."""
    if not evidence.objectives:
        return []
    rto = sum(evidence.timings.values()) + sum(sum(r.seconds.values()) for r in evidence.restores) + sum(
        (parse_point(run.finished_at) - parse_point(run.started_at)).total_seconds() for run in evidence.runs)
    proven = [(min(parse_point(t) for t in r.dumps.values()), parse_point(r.restored_at)) for r in evidence.restores
              if r.dumps and r.point in runs and runs[r.point].exit_code == 0]
    rpo = None
    if proven:
        oldest, restored = max(proven)
        rpo = max(0.0, (restored - oldest).total_seconds())
    return judge(evidence.objectives, rto, rpo)
