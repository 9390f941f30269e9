"""The catalog: one SQLite file per store (``<root>/catalog.sqlite``, WAL mode).

Times are stored as integer UTC seconds so that range scans use the indexes and
the timeline can group by hour with integer division. Paths are stored relative
to the store root, so a store can be moved as a whole.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, NamedTuple

from ..timeparse import utc
from .errors import DumpError
from .record import STATES, DumpRecord

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS dumps (
    id            INTEGER PRIMARY KEY,
    server        TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    taken_at      INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT    NOT NULL,
    content_sha256 TEXT,
    encrypted     INTEGER NOT NULL,
    path          TEXT    NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'unverified' CHECK (state IN ('unverified', 'good', 'bad')),
    verified_at   INTEGER,
    note          TEXT    NOT NULL DEFAULT '',
    collector     TEXT    NOT NULL,
    collected_at  INTEGER,
    recipients    TEXT    NOT NULL DEFAULT '[]'
);
-- one dump per source and second; also the index of per-source lookups
CREATE UNIQUE INDEX IF NOT EXISTS dumps_by_source ON dumps (server, source, taken_at);
CREATE INDEX IF NOT EXISTS dumps_by_time ON dumps (taken_at);
-- files seen by import: an unchanged (size, mtime) file is not hashed again
CREATE TABLE IF NOT EXISTS scanned_files (
    path      TEXT    PRIMARY KEY,
    size      INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,
    dump_id   INTEGER
) WITHOUT ROWID;
"""
# schema 2: backups indexed where they are (labmgr/sources/); the path column holds their origin
LOCATED = (("origin", "TEXT"), ("compression", "TEXT NOT NULL DEFAULT 'none'"), ("cipher", "TEXT"),
           ("checksum", "TEXT"))
_COLUMNS = ("id, server, source, kind, taken_at, size, sha256, content_sha256, encrypted, path, "
            "state, verified_at, note, collector, collected_at, recipients, origin, compression, cipher, checksum")
_PLACES = ", ".join("?" * 20)


class Cell(NamedTuple):
    """What one (hour, server, source) cell of the timeline holds (a tuple: a month's grid is ~30k cells)."""

    dumps: int
    good: int
    bad: int
    encrypted: int

    @property
    def exists(self) -> bool:
        return self.dumps > 0

    @property
    def verified(self) -> bool:
        """Every dump of the cell was verified good."""
        return self.dumps > 0 and self.good == self.dumps

    @property
    def has_bad(self) -> bool:
        return self.bad > 0


Timeline = dict[datetime, dict[tuple[str, str], Cell]]


class Catalog:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.file = self.root / "catalog.sqlite"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.file, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")   # WAL + NORMAL: durable at checkpoints, never corrupt
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise DumpError(f"{self.file} was written by a newer labmgr (schema {version})",
                                hint="upgrade labmgr")
            with self.db:
                self.db.executescript(SCHEMA)
                present = {row[1] for row in self.db.execute("PRAGMA table_info(dumps)")}
                for column, declaration in LOCATED:
                    if column not in present:
                        self.db.execute(f"ALTER TABLE dumps ADD COLUMN {column} {declaration}")
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise DumpError(f"cannot open the dump catalog {self.file}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # dumps -------------------------------------------------------------------
    def add(self, record: DumpRecord) -> DumpRecord:
        """Insert ``record``; sets and returns it with its new ``id``."""
        with self.db:
            record.id = self._insert(record)
        return record

    def add_many(self, records: Iterable[DumpRecord]) -> int:
        """Insert many records in one transaction (bulk loads, benchmarks)."""
        with self.db:
            cursor = self.db.executemany(
                f"INSERT INTO dumps ({_COLUMNS}) VALUES ({_PLACES})",
                (self._row(r) for r in records))
        return cursor.rowcount

    def get(self, dump_id: int) -> DumpRecord:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM dumps WHERE id = ?", (dump_id,)).fetchone()
        if row is None:
            raise DumpError(f"no dump with id {dump_id} in {self.file}")
        return self._record(row)

    def find(self, server: str, source: str, taken_at: datetime) -> DumpRecord | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM dumps WHERE server = ? AND source = ? AND taken_at = ?",
                              (server, source, _seconds(taken_at))).fetchone()
        return self._record(row) if row else None

    def list(self, server: str | None = None, source: str | None = None,
             since: datetime | None = None, until: datetime | None = None) -> list[DumpRecord]:
        """Dumps taken in [since, until], newest first."""
        where, args = [], []
        for column, value in (("server = ?", server), ("source = ?", source),
                              ("taken_at >= ?", since and _seconds(since)),
                              ("taken_at <= ?", until and _seconds(until))):
            if value is not None:
                where.append(column)
                args.append(value)
        sql = f"SELECT {_COLUMNS} FROM dumps"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY taken_at DESC, server, source"
        return [self._record(row) for row in self.db.execute(sql, args)]

    def newest_good_at(self, server: str, source: str, at: datetime) -> DumpRecord | None:
        """The newest dump of server/source taken at or before ``at`` that is not known bad."""
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM dumps WHERE server = ? AND source = ? AND taken_at <= ? "
            "AND state != 'bad' ORDER BY taken_at DESC LIMIT 1",
            (server, source, _seconds(at))).fetchone()
        return self._record(row) if row else None

    def mark(self, dump_id: int, state: str, note: str = "", at: datetime | None = None) -> None:
        if state not in STATES:
            raise DumpError(f"'{state}' is not a dump state ({', '.join(STATES)})")
        verified = None if state == "unverified" else _seconds(at or datetime.now(timezone.utc))
        with self.db:
            changed = self.db.execute("UPDATE dumps SET state = ?, note = ?, verified_at = ? WHERE id = ?",
                                      (state, note, verified, dump_id)).rowcount
        if not changed:
            raise DumpError(f"no dump with id {dump_id} in {self.file}")

    def set_content_sha256(self, dump_id: int, sha256: str) -> None:
        """The plaintext's checksum, learnt at a located backup's first restore."""
        with self.db:
            self.db.execute("UPDATE dumps SET content_sha256 = ? WHERE id = ?", (sha256, dump_id))

    def delete(self, dump_id: int) -> None:
        with self.db:
            self.db.execute("DELETE FROM dumps WHERE id = ?", (dump_id,))
            self.db.execute("UPDATE scanned_files SET dump_id = NULL WHERE dump_id = ?", (dump_id,))

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM dumps").fetchone()[0]

    def span(self) -> tuple[datetime | None, datetime | None]:
        """When the newest and the oldest dump were taken (None, None for an empty catalog); two index lookups."""
        newest, oldest = self.db.execute("SELECT max(taken_at), min(taken_at) FROM dumps").fetchone()
        return (_time(newest), _time(oldest)) if newest is not None else (None, None)

    # grid queries ------------------------------------------------------------
    def timeline(self, since: datetime, until: datetime) -> Timeline:
        """Hours in [since, until) -> (server, source) -> Cell; one grouped query on the time index."""
        rows = self.db.execute(
            "SELECT taken_at / 3600 AS hour, server, source, count(*), "
            "sum(state = 'good'), sum(state = 'bad'), sum(encrypted) "
            "FROM dumps WHERE taken_at >= ? AND taken_at < ? GROUP BY hour, server, source",
            (_seconds(since), _seconds(until)))
        grid: dict[int, dict[tuple[str, str], Cell]] = {}
        for hour, server, source, dumps, good, bad, encrypted in rows:
            cells = grid.get(hour)
            if cells is None:
                cells = grid[hour] = {}
            cells[(server, source)] = Cell(dumps, good, bad, encrypted)
        return {_time(hour * 3600): cells for hour, cells in grid.items()}

    def hours_with_all(self, cells: Iterable[tuple[str, str]], since: datetime,
                       until: datetime) -> list[datetime]:
        """Hours in [since, until) in which every (server, source) of ``cells`` has a dump not known bad:
        the hours a whole environment can be restored to."""
        wanted = sorted(set(cells))
        if not wanted:
            return []
        pairs = " OR ".join("(server = ? AND source = ?)" for _ in wanted)
        rows = self.db.execute(
            "SELECT taken_at / 3600 AS hour FROM dumps "
            f"WHERE taken_at >= ? AND taken_at < ? AND state != 'bad' AND ({pairs}) "
            "GROUP BY hour HAVING count(DISTINCT server || '/' || source) = ? ORDER BY hour",
            (_seconds(since), _seconds(until), *[v for pair in wanted for v in pair], len(wanted)))
        return [_time(hour * 3600) for (hour,) in rows]

    # import bookkeeping ------------------------------------------------------
    def scanned(self, prefix: str) -> dict[str, tuple[int, int]]:
        """Files below ``prefix`` (a directory path ending in '/') seen by import: path -> (size, mtime_ns)."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)   # a range scan on the primary key
        rows = self.db.execute("SELECT path, size, mtime_ns FROM scanned_files WHERE path >= ? AND path < ?",
                               (prefix, upper))
        return {path: (size, mtime) for path, size, mtime in rows}

    def remember_scanned(self, path: str, size: int, mtime_ns: int, dump_id: int | None) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO scanned_files (path, size, mtime_ns, dump_id) "
                            "VALUES (?, ?, ?, ?)", (path, size, mtime_ns, dump_id))

    # rows <-> records ------------------------------------------------------
    def _insert(self, record: DumpRecord) -> int:
        try:
            return self.db.execute(f"INSERT INTO dumps ({_COLUMNS}) VALUES ({_PLACES})",
                                   self._row(record)).lastrowid
        except sqlite3.IntegrityError:
            raise DumpError(f"{record.label} is already in the catalog",
                            hint="delete the stored dump first to replace it") from None

    def _row(self, r: DumpRecord) -> tuple:
        return (r.id, r.server, r.source, r.kind, _seconds(r.taken_at), r.size, r.sha256, r.content_sha256,
                int(r.encrypted), r.origin or self._relative(r.path), r.state,
                _seconds(r.verified_at) if r.verified_at else None, r.note, r.collector,
                _seconds(r.collected_at) if r.collected_at else None, json.dumps(list(r.recipients)),
                r.origin, r.compression, r.cipher, r.checksum)

    def _record(self, row: tuple) -> DumpRecord:
        (id_, server, source, kind, taken_at, size, sha, content_sha, encrypted, path, state, verified_at,
         note, collector, collected_at, recipients, origin, compression, cipher, checksum) = row
        return DumpRecord(id_, server, source, kind, _time(taken_at), size, sha, content_sha, bool(encrypted),
                          Path(origin) if origin else self.root / path, state,
                          _time(verified_at) if verified_at is not None else None,
                          note, collector, _time(collected_at) if collected_at is not None else None,
                          json.loads(recipients), origin, compression, cipher, checksum)

    def _relative(self, path: Path) -> str:
        text, prefix = str(path), str(self.root) + "/"
        return text[len(prefix):] if text.startswith(prefix) else Path(path).relative_to(self.root).as_posix()


def _seconds(moment: datetime) -> int:
    return int(utc(moment).timestamp())


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)
