"""Run a drill plan: snapshot, lab up, restore each point, probe, report, tell people, clean up.

The stage times (capture, clone, boot, inject, restore, probes) are the
drill's measured RTO; its RPO is the drill's start minus the oldest dump of the
newest point whose probes passed (labmgr/objectives.py). Exit codes: 0 every
critical probe passed at every point and every objective was met; 1 a probe
failed or a dump was bad (a backup problem: page someone); 2 the drill itself
could not run (the lab did not start, a tool failed); 3 every probe passed but
an objective (RTO, RPO) was missed.
"""

from __future__ import annotations

import os
import secrets
import time
from datetime import datetime, timedelta, timezone

from .. import locks, paths
from ..dumps.errors import DumpError
from ..dumps.store import store_for
from ..errors import LabError, LabmgrError
from ..history import history_for, now
from ..lab import records
from ..lab.evidence import evidence_for
from ..lab.lease import lease_hours
from ..lab.probing import probe_lab
from ..lab.restore import lab_restore
from ..lab.teardown import lab_down
from ..lab.up import lab_up
from ..notify import announce, ping_start
from ..notify.model import CRITICAL, EXIT_NOT_RUN, EXIT_OBJECTIVE_MISSED, EXIT_PASSED, RunSummary
from ..objectives import Judged, judge, merged
from ..progress import SILENT, Reporter
from ..report import write_reports
from ..snapshot import capture, find_snapshot
from ..spec import load_environment
from .plan import Plan, resolve_points
from .storage import drill_storage


def run_plan(plan: Plan, reporter: Reporter = SILENT) -> tuple[RunSummary, list[str]]:
    """Returns the summary and the warnings (notification problems, kept labs)."""
    env = load_environment(plan.environment)
    warnings: list[str] = []
    if plan.notify.heartbeat_url:
        errors: list[str] = []
        if not ping_start(plan.notify.heartbeat_url, errors=errors):
            warnings.extend(errors)
    started = datetime.now(timezone.utc)
    summary = RunSummary(environment=env.name, lab=plan.lab_name or "", point="", started_at=started,
                         finished_at=started, stages={}, results=[], exit_code=0)
    # held while the drill runs: a drill killed with its lab up leaves a lab with no lease whose
    # drill lock is free, which 'lab gc' collects
    drill_lock = paths.subdir("drills") / f"{os.getpid()}-{secrets.token_hex(4)}.lock"
    made: list[str] = []
    try:
        with locks.hold(drill_lock, "drill"):
            try:
                _drill(plan, env, summary, reporter, str(drill_lock), made)
            except DumpError as exc:            # a bad backup is what the drill is there to find
                summary.exit_code, summary.error = 1, str(exc)
            except LabmgrError as exc:
                summary.exit_code, summary.error = 2, str(exc)
            finally:
                summary.finished_at = datetime.now(timezone.utc)
                if summary.exit_code != EXIT_NOT_RUN:
                    summary.objectives = judge(merged(env.objectives, plan.objectives),
                                               sum(summary.stages.values()), summary.rpo_seconds)
                    summary.exit_code = exit_with_objectives(summary.exit_code, summary.objectives)
                if made:             # the lab is up: whatever failed, the drill finishes
                    warnings.extend(_finish(plan, made[0], summary))
    finally:
        drill_lock.unlink(missing_ok=True)
    with history_for(env) as history:
        history.record_drill(summary)
    if made and plan.report:            # after the drill is recorded: the report shows it, verdict first
        try:
            write_reports(evidence_for(made[0], plan.environment), plan.report.directory / made[0],
                          plan.report.formats, now())
        except LabmgrError as exc:
            warnings.append(f"report not written: {exc}")
    warnings.extend(announce(summary, heartbeat_url=plan.notify.heartbeat_url, webhook_url=plan.notify.webhook_url,
                             junit_path=plan.notify.junit, prometheus_path=plan.notify.prometheus, reporter=reporter))
    return summary, warnings


def _drill(plan: Plan, env, summary: RunSummary, reporter: Reporter, drill_lock: str, made: list[str]) -> None:
    with history_for(env) as history:      # the team's own backups and their storage, first
        drill_storage(env, summary, history, reporter)
    if any(not r.passed and r.severity == CRITICAL for r in summary.results):
        summary.exit_code = 1
    if plan.snapshot == "capture":
        begun = time.monotonic()
        snapshot = capture(env, reporter)
        summary.stages["capture"] = round(time.monotonic() - begun, 2)
    else:
        snapshot = find_snapshot(env.name, None if plan.snapshot == "latest" else plan.snapshot)
    record = lab_up(env, plan.environment, name=plan.lab_name, snapshot_id=snapshot.id, reporter=reporter,
                    drill_lock=drill_lock)
    made.append(record.name)
    summary.lab = record.name
    summary.stages["clone"] = round(record.timings.get("network", 0) + record.timings.get("clone", 0), 2)
    # an instant lab resumes instead of booting: that is its "boot" stage
    summary.stages["boot"] = round(sum(record.timings.get(k, 0) for k in ("boot", "ready", "clean_snapshot", "resume")), 2)
    with store_for(env) as store:
        points = resolve_points(plan.points, store, datetime.now(timezone.utc))
    several = len(points) > 1
    proven: datetime | None = None      # the newest restored data a passing point proved
    for point in points:
        restored = lab_restore(record.name, point, reporter)
        _add(summary.stages, "inject", restored.seconds.get("stage", 0))
        _add(summary.stages, "restore", restored.seconds.get("restore", 0))
        summary.point = records.load(record.name).point["at"]
        probed = probe_lab(record.name, plan.probes)
        _add(summary.stages, "probes", probed.stages["probes"])
        if probed.exit_code == EXIT_PASSED:   # the point's data is only as new as its oldest dump
            oldest = min(r.taken_at for pairs in restored.plan.chosen.values() for _, r in pairs)
            proven = max(proven or oldest, oldest)
            summary.rpo_seconds = round(max(0.0, (summary.started_at - proven).total_seconds()), 1)
        for result in probed.results:
            if several:
                result.name = f"{summary.point} {result.name}"
            summary.results.append(result)
        summary.exit_code = max(summary.exit_code, probed.exit_code)
    if plan.mutate:
        _mutate(record.name, plan, summary, reporter)


def _mutate(lab: str, plan: Plan, summary: RunSummary, reporter: Reporter) -> None:
    """How much the probes catch, at the drill's last point; a low score does not fail the drill."""
    from ..lab.mutate import mutate_lab

    begun = time.monotonic()
    score = mutate_lab(lab, plan.probes, reporter=reporter)
    summary.mutation = {"caught": score.caught, "applied": score.applied, "score": round(score.score, 3),
                        "blind": score.blind, "restored": score.restored,
                        "seconds": round(time.monotonic() - begun, 2)}   # not a stage: no part of the RTO
    if not score.restored:
        raise LabError(f"lab {lab} answers its probes differently after the mutation test",
                       hint=f"restore it: 'labmgr lab restore {lab} --at {summary.point}'")


def exit_with_objectives(exit_code: int, objectives: list[Judged]) -> int:
    """A drill whose probes all passed but that missed an objective exits 3; a failed probe (1) or a
    drill that could not run (2) keeps its own code: the backups' problem comes first."""
    if exit_code == EXIT_PASSED and any(not judged.met for judged in objectives):
        return EXIT_OBJECTIVE_MISSED
    return exit_code


def _finish(plan: Plan, lab: str, summary: RunSummary) -> list[str]:
    warnings = []
    if plan.keep and summary.exit_code != 2:
        record = records.load(lab)
        until = datetime.now(timezone.utc) + timedelta(hours=lease_hours(plan.keep.lease))
        record.lease_until = until.strftime("%Y-%m-%dT%H:%M:%SZ")
        record.save()
        warnings.append(f"lab {lab} kept for people until {record.lease_until} ('labmgr lab gc --expired')")
    else:
        try:
            lab_down(lab)
        except LabmgrError as exc:
            warnings.append(f"lab {lab} could not be removed: {exc}")
    return warnings


def _add(stages: dict[str, float], stage: str, seconds: float) -> None:
    stages[stage] = round(stages.get(stage, 0) + seconds, 2)
