"""The evidence of drills: labs made, points restored, probe results, sign-offs.

Kept in the environment's dump catalog database (its own tables), so it
outlives the labs it speaks of: a DR-day report can be written after the lab
is gone.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

from .objectives import Judged, judge

SCHEMA = """
CREATE TABLE IF NOT EXISTS history_labs (
    lab TEXT NOT NULL, environment TEXT NOT NULL, snapshot TEXT NOT NULL,
    created_at TEXT NOT NULL, timings TEXT NOT NULL, PRIMARY KEY (lab, created_at));
CREATE TABLE IF NOT EXISTS history_restores (
    id INTEGER PRIMARY KEY, lab TEXT NOT NULL, environment TEXT NOT NULL, point TEXT NOT NULL,
    requested TEXT NOT NULL, dumps TEXT NOT NULL, skew_seconds REAL NOT NULL,
    restored_at TEXT NOT NULL, seconds TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history_probe_runs (
    id INTEGER PRIMARY KEY, lab TEXT NOT NULL, environment TEXT NOT NULL, point TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT NOT NULL, exit_code INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS history_probe_results (
    run_id INTEGER NOT NULL REFERENCES history_probe_runs(id), name TEXT NOT NULL, server TEXT NOT NULL,
    kind TEXT NOT NULL, severity TEXT NOT NULL, passed INTEGER NOT NULL, seconds REAL NOT NULL,
    detail TEXT NOT NULL, output_tail TEXT NOT NULL, value TEXT);
CREATE TABLE IF NOT EXISTS history_signoffs (
    id INTEGER PRIMARY KEY, lab TEXT NOT NULL, environment TEXT NOT NULL, point TEXT NOT NULL,
    user TEXT NOT NULL, note TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history_drills (
    id INTEGER PRIMARY KEY, environment TEXT NOT NULL, lab TEXT NOT NULL, point TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT NOT NULL, stages TEXT NOT NULL, exit_code INTEGER NOT NULL,
    rpo_seconds REAL, probes INTEGER NOT NULL, passed INTEGER NOT NULL, error TEXT NOT NULL,
    objectives TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS history_share_events (
    id INTEGER PRIMARY KEY, lab TEXT NOT NULL, environment TEXT NOT NULL, share TEXT NOT NULL,
    person TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history_profiles (
    run_id INTEGER NOT NULL REFERENCES history_probe_runs(id), lab TEXT NOT NULL, environment TEXT NOT NULL,
    point TEXT NOT NULL, server TEXT NOT NULL, profile TEXT NOT NULL, seconds REAL NOT NULL);
CREATE TABLE IF NOT EXISTS history_consoles (
    run_id INTEGER NOT NULL REFERENCES history_probe_runs(id), server TEXT NOT NULL, screenshot TEXT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, serial_log TEXT NOT NULL, serial_tail TEXT NOT NULL,
    error TEXT NOT NULL, taken_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_profiles_by_env ON history_profiles (environment, server, point);
CREATE INDEX IF NOT EXISTS history_runs_by_lab ON history_probe_runs (lab, id);
"""


def history_for(env) -> "History":
    """The history of ``env``, next to its dump catalog."""
    from .dumps.store import store_root

    return History(store_root(env))


def now() -> str:
    return _iso(datetime.now(timezone.utc))


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Restored:
    point: str
    requested: str
    dumps: dict[str, str]
    skew_seconds: float
    restored_at: str
    seconds: dict[str, float]


@dataclass
class StoredResult:
    name: str
    server: str
    kind: str
    severity: str
    passed: bool
    seconds: float
    detail: str
    output_tail: str


@dataclass
class ProbeRun:
    id: int
    point: str
    started_at: str
    finished_at: str
    exit_code: int
    results: list[StoredResult] = field(default_factory=list)


@dataclass
class Drill:
    point: str
    started_at: str
    finished_at: str
    stages: dict[str, float]
    exit_code: int
    rpo_seconds: float | None
    probes: int
    passed: int
    error: str
    objectives: dict[str, float] = field(default_factory=dict)   # the targets it was judged against, seconds
    lab: str = ""

    @property
    def rto_seconds(self) -> float:
        return sum(self.stages.values())

    def judged(self) -> list[Judged]:
        return judge(self.objectives, self.rto_seconds, self.rpo_seconds)


def drill_trend(drills: list[Drill], max_age_hours: float, moment: datetime) -> tuple[float, float, str | None]:
    """Pass rate (%), mean RTO (s), and a warning when the last good drill is older than the limit."""
    good = [d for d in drills if d.exit_code == 0]
    rate = 100 * len(good) / len(drills) if drills else 0.0
    mean_rto = sum(d.rto_seconds for d in drills) / len(drills) if drills else 0.0
    last = datetime.fromisoformat(good[-1].finished_at.replace("Z", "+00:00")) if good else None
    warning = None
    if last is None or moment - last > timedelta(hours=max_age_hours):
        when = f"was at {good[-1].finished_at}" if good else "never happened"
        warning = f"the last successful drill {when}; the limit is {max_age_hours:g} hours"
    return rate, mean_rto, warning


@dataclass
class Signoff:
    point: str
    user: str
    note: str
    at: str
    verdict: str = ""       # from a share link: 'right' or 'wrong'; '' for `labmgr signoff`


@dataclass
class ShareEvent:
    """Who used a share link, what for and when (``labmgr share``)."""

    share: str
    person: str
    event: str              # opened, page, websocket, signoff, refused
    detail: str
    at: str


@dataclass
class LabEvidence:
    lab: str
    environment: str
    snapshot: str = ""
    created_at: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    restores: list[Restored] = field(default_factory=list)
    runs: list[ProbeRun] = field(default_factory=list)
    signoffs: list[Signoff] = field(default_factory=list)
    share_events: list[ShareEvent] = field(default_factory=list)
    bisections: list[dict] = field(default_factory=list)    # labmgr bisect (lab/bisect.py keeps them)
    mutations: list[dict] = field(default_factory=list)     # probe --mutate (lab/mutate.py keeps them)
    consoles: dict[int, list] = field(default_factory=dict)  # run id -> ConsoleEvidence (history_evidence.py)
    row_counts: dict[str, list] = field(default_factory=dict)   # "server: table" -> [(point, rows)]
    drills: list[Drill] = field(default_factory=list)       # the environment's drills, oldest first
    objectives: dict[str, float] = field(default_factory=dict)  # the spec's, when no drill judged this lab

    @property
    def drill(self) -> Drill | None:
        """The drill that made this lab, if a drill did."""
        return next((d for d in reversed(self.drills) if d.lab == self.lab), None)


class History:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(root / "catalog.sqlite", timeout=30)
        self.db.executescript(SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(history_probe_results)")}
        if "value" not in columns:      # a catalog written before compare_previous kept its values here
            self.db.execute("ALTER TABLE history_probe_results ADD COLUMN value TEXT")
        if "verdict" not in {row[1] for row in self.db.execute("PRAGMA table_info(history_signoffs)")}:
            self.db.execute("ALTER TABLE history_signoffs ADD COLUMN verdict TEXT NOT NULL DEFAULT ''")
        if "objectives" not in {row[1] for row in self.db.execute("PRAGMA table_info(history_drills)")}:
            self.db.execute("ALTER TABLE history_drills ADD COLUMN objectives TEXT NOT NULL DEFAULT '{}'")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "History":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # writing ---------------------------------------------------------------
    def record_lab(self, lab: str, environment: str, snapshot: str, created_at: str,
                   timings: dict[str, float]) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO history_labs VALUES (?, ?, ?, ?, ?)",
                            (lab, environment, snapshot, created_at, json.dumps(timings)))

    def record_restore(self, lab: str, environment: str, point: dict[str, Any]) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO history_restores (lab, environment, point, requested, dumps, skew_seconds, "
                "restored_at, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (lab, environment, point["at"], point["requested"], json.dumps(point["dumps"]),
                 point["skew_seconds"], point["restored_at"], json.dumps(point["seconds"])))

    def record_probe_run(self, lab: str, environment: str, point: str, started_at: str, finished_at: str,
                         exit_code: int, results: Iterable[Any]) -> int:
        with self.db:
            run_id = self.db.execute(
                "INSERT INTO history_probe_runs (lab, environment, point, started_at, finished_at, exit_code) "
                "VALUES (?, ?, ?, ?, ?, ?)", (lab, environment, point, started_at, finished_at, exit_code)).lastrowid
            self.db.executemany(
                "INSERT INTO history_probe_results (run_id, name, server, kind, severity, passed, seconds, detail, "
                "output_tail, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, r.name, r.server, r.kind, r.severity, int(r.passed), r.seconds, r.detail,
                  r.output_tail, getattr(r, "value", None)) for r in results])
        return run_id

    def record_drill(self, summary: Any) -> None:
        """One `labmgr run`: its stage times (the RTO), RPO and verdict."""
        with self.db:
            self.db.execute(
                "INSERT INTO history_drills (environment, lab, point, started_at, finished_at, stages, exit_code, "
                "rpo_seconds, probes, passed, error, objectives) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (summary.environment, summary.lab, summary.point, _iso(summary.started_at),
                 _iso(summary.finished_at), json.dumps(summary.stages), summary.exit_code, summary.rpo_seconds,
                 len(summary.results), sum(1 for r in summary.results if r.passed), summary.error,
                 json.dumps({j.name: j.target for j in getattr(summary, "objectives", [])})))

    def drills(self, environment: str) -> list[Drill]:
        return [Drill(point, started, finished, json.loads(stages), code, rpo, probes, passed, error,
                      json.loads(objectives), lab)
                for point, started, finished, stages, code, rpo, probes, passed, error, objectives, lab
                in self.db.execute(
                    "SELECT point, started_at, finished_at, stages, exit_code, rpo_seconds, probes, passed, error, "
                    "objectives, lab FROM history_drills WHERE environment = ? ORDER BY id", (environment,))]

    def add_signoff(self, lab: str, environment: str, point: str, user: str, note: str,
                    verdict: str = "") -> Signoff:
        signoff = Signoff(point, user, note, now(), verdict)
        with self.db:
            self.db.execute("INSERT INTO history_signoffs (lab, environment, point, user, note, at, verdict) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)", (lab, environment, point, user, note, signoff.at, verdict))
        return signoff

    def add_share_events(self, lab: str, environment: str, events: Iterable[ShareEvent]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT INTO history_share_events (lab, environment, share, person, event, detail, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(lab, environment, e.share, e.person, e.event, e.detail, e.at) for e in events])

    # reading ---------------------------------------------------------------
    def previous_values(self, environment: str, names: Iterable[str], before: datetime) -> dict[str, tuple[str, str]]:
        """For each compare_previous probe name: (point, value) it read at the latest point before
        ``before``, in any lab of ``environment`` (the newest run at that point wins)."""
        from .errors import LabmgrError
        from .timeparse import parse_point

        out: dict[str, tuple[datetime, str, str]] = {}
        for name in names:
            for point, value in self.db.execute(
                    "SELECT r.point, p.value FROM history_probe_results p JOIN history_probe_runs r ON r.id = p.run_id "
                    "WHERE r.environment = ? AND p.name = ? AND p.kind = 'compare_previous' AND p.value IS NOT NULL "
                    "ORDER BY r.id", (environment, name)):
                if not point:              # a run in a lab never restored to a point
                    continue
                try:
                    moment = parse_point(point)
                except LabmgrError:
                    continue
                if moment < before and (name not in out or moment >= out[name][0]):
                    out[name] = (moment, point, value)
        return {name: (point, value) for name, (_, point, value) in out.items()}

    def evidence(self, lab: str, environment: str) -> LabEvidence:
        out = LabEvidence(lab, environment)
        row = self.db.execute("SELECT snapshot, created_at, timings FROM history_labs WHERE lab = ? "
                              "AND environment = ? ORDER BY created_at DESC LIMIT 1", (lab, environment)).fetchone()
        if row:
            out.snapshot, out.created_at, out.timings = row[0], row[1], json.loads(row[2])
        since = out.created_at or ""
        for point, requested, dumps, skew, at, seconds in self.db.execute(
                "SELECT point, requested, dumps, skew_seconds, restored_at, seconds FROM history_restores "
                "WHERE lab = ? AND environment = ? AND restored_at >= ? ORDER BY id", (lab, environment, since)):
            out.restores.append(Restored(point, requested, json.loads(dumps), skew, at, json.loads(seconds)))
        for run_id, point, started, finished, code in self.db.execute(
                "SELECT id, point, started_at, finished_at, exit_code FROM history_probe_runs "
                "WHERE lab = ? AND environment = ? AND started_at >= ? ORDER BY id", (lab, environment, since)):
            run = ProbeRun(run_id, point, started, finished, code)
            run.results = [StoredResult(name, server, kind, severity, bool(passed), seconds, detail, tail)
                           for name, server, kind, severity, passed, seconds, detail, tail in self.db.execute(
                               "SELECT name, server, kind, severity, passed, seconds, detail, output_tail "
                               "FROM history_probe_results WHERE run_id = ? ORDER BY name", (run_id,))]
            out.runs.append(run)
        out.signoffs = [Signoff(*row) for row in self.db.execute(
            "SELECT point, user, note, at, verdict FROM history_signoffs WHERE lab = ? AND environment = ? "
            "AND at >= ? ORDER BY id", (lab, environment, since))]
        out.share_events = [ShareEvent(*row) for row in self.db.execute(
            "SELECT share, person, event, detail, at FROM history_share_events WHERE lab = ? AND environment = ? "
            "AND at >= ? ORDER BY id", (lab, environment, since))]
        return out
