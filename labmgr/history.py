"""The evidence of drills: labs made, points restored, probe results, sign-offs.

Kept in the environment's dump catalog database (its own tables), so it
outlives the labs it speaks of: a DR-day report can be written after the lab
is gone.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

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
    detail TEXT NOT NULL, output_tail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history_signoffs (
    id INTEGER PRIMARY KEY, lab TEXT NOT NULL, environment TEXT NOT NULL, point TEXT NOT NULL,
    user TEXT NOT NULL, note TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_runs_by_lab ON history_probe_runs (lab, id);
"""


def history_for(env) -> "History":
    """The history of ``env``, next to its dump catalog."""
    from .dumps.store import store_root

    return History(store_root(env))


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
class Signoff:
    point: str
    user: str
    note: str
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


class History:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(root / "catalog.sqlite", timeout=30)
        self.db.executescript(SCHEMA)

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
                "INSERT INTO history_probe_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, r.name, r.server, r.kind, r.severity, int(r.passed), r.seconds, r.detail,
                  r.output_tail) for r in results])
        return run_id

    def add_signoff(self, lab: str, environment: str, point: str, user: str, note: str) -> Signoff:
        signoff = Signoff(point, user, note, now())
        with self.db:
            self.db.execute("INSERT INTO history_signoffs (lab, environment, point, user, note, at) "
                            "VALUES (?, ?, ?, ?, ?, ?)", (lab, environment, point, user, note, signoff.at))
        return signoff

    # reading ---------------------------------------------------------------
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
            "SELECT point, user, note, at FROM history_signoffs WHERE lab = ? AND environment = ? AND at >= ? "
            "ORDER BY id", (lab, environment, since))]
        return out
