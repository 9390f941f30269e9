"""``labmgr bisect LAB``: the last good and the first bad hour, in few restores.

It assumes that once the data is bad it stays bad (corruption, encryption, a
lost table). The hours are those the lab can be restored to exactly (every
dump source has a dump in the hour; see ``lastclean.restorable_points``).

1. The last hour is probed. Good: the first hour is probed too; bad there is a
   contradiction (a good hour after a bad one), good means nothing went bad.
2. Bad: binary search between a virtual good hour before the first and the
   last hour, so the first hour is probed only when everything before the
   answer was bad. Both boundary hours end up probed (verified) by the search.
3. The lab goes back to the last good hour (one restore, unless it is there).

That is at most ``1 + ceil(log2 N)`` probed restores plus the return:
``ceil(log2 N) + 2`` restores in all. Every restore and probe run goes to the
history like any other (so into the report), and the bisection itself too.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from ..dumps.errors import DumpError
from ..dumps.store import store_for
from ..errors import LabError
from ..history import history_for, now
from ..probes import load_probes
from ..probes.runner import select
from ..progress import SILENT, Reporter
from ..spec import load_environment
from ..timeparse import format_point, parse_point
from . import records
from .lastclean import restorable_points

SCHEMA = """
CREATE TABLE IF NOT EXISTS history_bisections (
    id INTEGER PRIMARY KEY, lab TEXT NOT NULL, environment TEXT NOT NULL, probes TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT NOT NULL, verdict TEXT NOT NULL, last_good TEXT, first_bad TEXT,
    restores INTEGER NOT NULL, budget INTEGER NOT NULL, steps TEXT NOT NULL);
"""
FOUND, ALL_GOOD, ALL_BAD, NON_MONOTONE = "found", "all-good", "all-bad", "non-monotone"


@dataclass
class Step:
    point: datetime
    passed: bool
    seconds: float
    failed: list[str] = field(default_factory=list)     # the probes that failed there


@dataclass
class Bisection:
    lab: str
    hours: int
    budget: int
    verdict: str = ""
    last_good: datetime | None = None
    first_bad: datetime | None = None
    steps: list[Step] = field(default_factory=list)
    restores: int = 0
    seconds: float = 0.0
    message: str = ""

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict in (FOUND, ALL_GOOD) else 1


def restore_budget(hours: int) -> int:
    return math.ceil(math.log2(hours)) + 2 if hours > 1 else 2


def bisect_lab(name: str, probes_file: Path, probe: str | None = None, since: str | None = None,
               until: str | None = None, reporter: Reporter = SILENT,
               on_step: Callable[[Step, Bisection], None] | None = None) -> Bisection:
    from .probing import probe_lab
    from .restore import lab_restore

    record = records.load(name)
    if record.state != "up":
        raise LabError(f"lab {name} is {record.state}, not up", hint=f"'labmgr lab show {name}'")
    env = load_environment(record.spec)
    select(load_probes(probes_file, env), probe)      # a bad file or probe name fails before any restore
    with store_for(env) as store:
        points = restorable_points(env, store, since and parse_point(since), until and parse_point(until))
    if not points:
        raise DumpError(f"no hour between {since or 'the first dump'} and {until or 'the last'} has a dump of "
                        f"every source of {env.name}", hint="widen --from/--to, or 'labmgr dumps list'")
    result = Bisection(name, len(points), restore_budget(len(points)))
    started, begun = now(), time.monotonic()
    verdicts: dict[int, bool] = {}
    at_index: list[int | None] = [None]

    def go(index: int, probed: bool = True) -> bool:
        """Restore hour ``index`` (unless the lab is there) and, when ``probed``, run the probes."""
        step_started = time.monotonic()
        if at_index[0] != index:
            lab_restore(name, format_point(points[index]), reporter)
            result.restores += 1
            at_index[0] = index
        if not probed:
            return verdicts[index]
        summary = probe_lab(name, probes_file, [probe] if probe else None)
        # good: every critical probe passed (or the one probe asked for, whatever its severity)
        passed = all(r.passed for r in summary.results if probe or r.severity == "critical")
        verdicts[index] = passed
        step = Step(points[index], passed, round(time.monotonic() - step_started, 2),
                    [r.name for r in summary.results if not r.passed and (probe or r.severity == "critical")])
        result.steps.append(step)
        reporter.note(f"{format_point(step.point)}: {'good' if passed else 'bad'}"
                      + (f" ({', '.join(step.failed)} failed)" if step.failed else ""))
        if on_step:
            on_step(step, result)
        return passed

    last = len(points) - 1
    with reporter.step(f"bisect {len(points)} hours (at most {result.budget} restores)",
                       total=result.budget) as progress:
        def probe_at(index: int) -> bool:
            passed = go(index)
            progress.advance()
            return passed

        if probe_at(last):
            if last == 0 or probe_at(0):
                result.verdict, result.last_good = ALL_GOOD, points[last]
            else:
                result.verdict, result.first_bad, result.last_good = NON_MONOTONE, points[0], points[last]
            go(last, probed=False)
        else:
            good, bad = -1, last
            while bad - good > 1:
                middle = (good + bad) // 2
                if probe_at(middle):
                    good = middle
                else:
                    bad = middle
            result.first_bad = points[bad]
            if good < 0:
                result.verdict = ALL_BAD
            else:
                result.verdict, result.last_good = FOUND, points[good]
                go(good, probed=False)
                progress.advance()
    result.seconds = round(time.monotonic() - begun, 2)
    result.message = _message(result, points)
    _record(env, result, probe, started)
    return result


def _message(result: Bisection, points: list[datetime]) -> str:
    span = f"{format_point(points[0])} .. {format_point(points[-1])} ({len(points)} hours)"
    if result.verdict == FOUND:
        return (f"last good hour {format_point(result.last_good)}, first bad hour {format_point(result.first_bad)}"
                f" in {span}; the lab is at {format_point(result.last_good)}")
    if result.verdict == ALL_GOOD:
        return f"every probed hour is good in {span}; the lab is at {format_point(result.last_good)}"
    if result.verdict == ALL_BAD:
        return (f"the first hour {format_point(points[0])} is already bad in {span}: no good hour here; "
                "try an earlier --from")
    return (f"the answers contradict 'once bad, stays bad': {format_point(result.first_bad)} is bad but the later "
            f"{format_point(result.last_good)} is good, in {span}; sweep every hour instead (restore and probe each "
            f"hour: labmgr lab restore / labmgr probe, or the TUI's timeline)")


def _record(env, result: Bisection, probe: str | None, started: str) -> None:
    steps = [{"point": format_point(s.point), "passed": s.passed, "seconds": s.seconds, "failed": s.failed}
             for s in result.steps]
    with history_for(env) as history:
        with history.db:
            history.db.executescript(SCHEMA)
            history.db.execute(
                "INSERT INTO history_bisections (lab, environment, probes, started_at, finished_at, verdict, "
                "last_good, first_bad, restores, budget, steps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (result.lab, env.name, probe or "all", started, now(), result.verdict,
                 result.last_good and format_point(result.last_good),
                 result.first_bad and format_point(result.first_bad), result.restores, result.budget,
                 json.dumps(steps)))


def bisections(env, lab: str, since: str = "") -> list[dict]:
    """The bisections recorded for ``lab`` (for its report), oldest first."""
    with history_for(env) as history:
        history.db.executescript(SCHEMA)
        rows = history.db.execute("SELECT lab, probes, started_at, verdict, last_good, first_bad, restores, budget, "
                                  "steps FROM history_bisections WHERE environment = ? AND lab = ? "
                                  "AND started_at >= ? ORDER BY id", (env.name, lab, since)).fetchall()
        keys = ("lab", "probes", "started_at", "verdict", "last_good", "first_bad", "restores", "budget", "steps")
        return [{**dict(zip(keys, row)), "steps": json.loads(row[-1])} for row in rows]

