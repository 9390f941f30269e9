"""`labmgr probe LAB`: run the probes of a lab at the point it is at, and keep the results."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from ..errors import LabError
from ..history import history_for
from ..notify.model import RunSummary
from ..probes import load_probes, run_probes
from ..probes.runner import lab_point
from ..probes.report import exit_code
from ..spec import load_environment
from ..timeparse import format_point
from . import records


def probe_lab(name: str, probes_file: Path, only: list[str] | None = None) -> RunSummary:
    """Under the lab's lock: no restore changes the lab while it is probed, and the results are
    filed under the point the lab is actually at."""
    records.load(name)          # a lab that does not exist: said before any lock is made for it
    with records.lab_lock(name):
        return _probe(records.load(name), probes_file, only)


def _probe(record, probes_file: Path, only: list[str] | None) -> RunSummary:
    name = record.name
    if record.state != "up":
        raise LabError(f"lab {name} is {record.state}, not up", hint=f"'labmgr lab show {name}'")
    env = load_environment(record.spec)
    probes = load_probes(probes_file, env)
    started = datetime.now(timezone.utc)
    compared = [p.name for p in probes if p.kind == "compare_previous"]
    with history_for(env) as history:
        previous = history.previous_values(env.name, compared, lab_point(record) or started) if compared else {}
    results = run_probes(record, env, probes, only=only, previous=previous)
    finished = datetime.now(timezone.utc)
    point = record.point.get("at", "")
    summary = RunSummary(environment=env.name, lab=name, point=point, started_at=started, finished_at=finished,
                         stages={"probes": round((finished - started).total_seconds(), 2)},
                         results=results, exit_code=exit_code(results))
    with history_for(env) as history:
        history.record_probe_run(name, env.name, point, format_point(started), format_point(finished),
                                 summary.exit_code, results)
    return summary
