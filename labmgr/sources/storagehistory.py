"""Storage checks kept next to the drills in the history (the dump catalog's database): what each
``check-storage`` of a drill found, so that ``labmgr history`` shows the storage's trend too."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from ..timeparse import format_point
from .storagecheck import StorageReport

SCHEMA = """
CREATE TABLE IF NOT EXISTS history_storage_checks (
    id           INTEGER PRIMARY KEY,
    environment  TEXT    NOT NULL,
    checked_at   TEXT    NOT NULL,
    server       TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    location     TEXT    NOT NULL,
    backups      INTEGER NOT NULL,
    newest       TEXT,
    missing      INTEGER NOT NULL,
    versioning   TEXT    NOT NULL,
    object_lock  TEXT    NOT NULL,
    can_delete   INTEGER,
    problems     TEXT    NOT NULL
);
"""


@dataclass(frozen=True)
class StorageCheck:
    checked_at: str
    server: str
    source: str
    location: str
    backups: int
    newest: str | None
    missing: int
    versioning: str
    object_lock: str
    can_delete: bool | None
    problems: list[str]


def record_storage_checks(db: sqlite3.Connection, environment: str, checked_at: str,
                          reports: list[StorageReport]) -> None:
    with db:
        db.executescript(SCHEMA)
        db.executemany(
            "INSERT INTO history_storage_checks (environment, checked_at, server, source, location, backups, "
            "newest, missing, versioning, object_lock, can_delete, problems) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(environment, checked_at, r.server, r.source, r.location, r.backups,
              format_point(r.newest) if r.newest else None, sum(g[2] for g in r.gaps), r.versioning, r.object_lock,
              None if r.can_delete is None else int(r.can_delete), json.dumps(r.problems)) for r in reports])


def latest_storage_checks(db: sqlite3.Connection, environment: str) -> list[StorageCheck]:
    """The newest check of each location of ``environment``."""
    with db:
        db.executescript(SCHEMA)
    rows = db.execute(
        "SELECT checked_at, server, source, location, backups, newest, missing, versioning, object_lock, "
        "can_delete, problems FROM history_storage_checks WHERE id IN (SELECT max(id) FROM history_storage_checks "
        "WHERE environment = ? GROUP BY server, source) ORDER BY server, source", (environment,))
    return [StorageCheck(*row[:9], None if row[9] is None else bool(row[9]), json.loads(row[10])) for row in rows]
