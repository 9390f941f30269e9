"""Restorable ranges of pgBackRest stanzas, kept next to the dumps in the catalog (its own table,
made on first use): what ``dumps index`` learnt, what ``dumps list``, the timeline and
``lab restore --at`` read. A range is restorable to any second in it, not only at hourly points."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..dumps.catalog import Catalog, Cell, Timeline
from ..dumps.errors import DumpError
from ..dumps.record import DumpRecord
from ..spec.model import DumpSource
from ..timeparse import format_point
from .pgbackrest import StanzaRange

TABLE = """
CREATE TABLE IF NOT EXISTS pitr_ranges (
    server     TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    origin     TEXT    NOT NULL,
    start      INTEGER NOT NULL,
    end_at     INTEGER NOT NULL,
    major      INTEGER NOT NULL,
    backups    TEXT    NOT NULL,
    archive    TEXT    NOT NULL,
    indexed_at INTEGER NOT NULL,
    PRIMARY KEY (server, source)
) WITHOUT ROWID
"""


@dataclass(frozen=True)
class IndexedRange:
    server: str
    source: str
    origin: str
    range: StanzaRange
    indexed_at: datetime

    @property
    def label(self) -> str:
        return f"{self.server}/{self.source} {format_point(self.range.start)} to {format_point(self.range.end)}"


def _db(catalog: Catalog) -> sqlite3.Connection:
    with catalog.db:
        catalog.db.execute(TABLE)
    return catalog.db


def record_range(catalog: Catalog, server: str, source: str, origin: str, found: StanzaRange) -> None:
    now = int(datetime.now(timezone.utc).timestamp())
    db = _db(catalog)
    with db:
        db.execute("INSERT OR REPLACE INTO pitr_ranges VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (server, source, origin, int(found.start.timestamp()), int(found.end.timestamp()), found.major,
                    json.dumps(found.backups), json.dumps(list(found.archive)), now))


def ranges(catalog: Catalog, server: str | None = None, source: str | None = None) -> list[IndexedRange]:
    rows = _db(catalog).execute("SELECT * FROM pitr_ranges ORDER BY server, source").fetchall()
    return [IndexedRange(row[0], row[1], row[2], StanzaRange(_time(row[3]), _time(row[4]), row[5],
                                                             json.loads(row[6]), tuple(json.loads(row[7]))),
                         _time(row[8]))
            for row in rows if server in (None, row[0]) and source in (None, row[1])]


def point_in_range(catalog: Catalog, server: str, source: DumpSource, at: datetime) -> DumpRecord:
    """The pseudo-dump ``lab restore`` plans for a stanza at second ``at``; one line when it cannot."""
    found = ranges(catalog, server, source.name)
    if not found:
        raise DumpError(f"server {server}: {source.name} ({source.pgbackrest.describe}) has no restorable range "
                        "indexed", hint="run 'labmgr dumps index' first")
    span = found[0].range
    if not span.start <= at <= span.end:
        raise DumpError(f"server {server}: {format_point(at)} is outside {source.name}'s restorable range "
                        f"{format_point(span.start)} to {format_point(span.end)}",
                        hint="choose a second in the range ('labmgr dumps list' shows it), or run "
                             "'labmgr dumps index' again for newer WAL")
    moment = at.replace(microsecond=0)
    return DumpRecord(None, server, source.name, "postgres", moment, 0, "", None, False, Path(found[0].origin),
                      state="good", collector="pgbackrest", origin=found[0].origin)


def hour_point(catalog: Catalog, hour: datetime) -> datetime:
    """The second the timeline restores for ``hour``: its start, or, when a range begins later in that hour
    (the first hour of a range), the range's first second, so every cell the timeline fills can be restored."""
    starts = [r.range.start for r in ranges(catalog) if hour < r.range.start < hour + HOUR]
    return max(starts, default=hour)


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


# the timeline's view: a range fills every hour it overlaps (restorable at seconds of that hour) ------------
HOUR = timedelta(hours=1)


def range_hours(found: IndexedRange, since: datetime, until: datetime) -> list[datetime]:
    """The whole hours in [since, until) that hold a second of the range."""
    hour = max(since, found.range.start).replace(minute=0, second=0, microsecond=0)
    hours = []
    while hour < until and hour <= found.range.end:
        if hour >= since:
            hours.append(hour)
        hour += HOUR
    return hours


def with_ranges(catalog: Catalog, grid: Timeline, since: datetime, until: datetime) -> Timeline:
    """The catalog's grid with each range's hours as unverified cells (one point: the range)."""
    for found in ranges(catalog):
        for hour in range_hours(found, since, until):
            grid.setdefault(hour, {})[(found.server, found.source)] = Cell(1, 0, 0, 0)
    return grid


def complete_hours(catalog: Catalog, cells: list[tuple[str, str]], since: datetime,
                   until: datetime) -> list[datetime]:
    """Hours in which every cell has a dump not known bad, or a second of its range."""
    spans = {(r.server, r.source): set(range_hours(r, since, until)) for r in ranges(catalog)}
    dumped = [cell for cell in cells if cell not in spans]
    hours = set(catalog.hours_with_all(dumped, since, until)) if dumped else None
    for cell in cells:
        if cell in spans:
            hours = spans[cell] if hours is None else hours & spans[cell]
    return sorted(hours or ())


def span_with_ranges(catalog: Catalog) -> tuple[datetime | None, datetime | None]:
    """(newest, oldest) of the dumps and the ranges together, as ``Catalog.span``."""
    newest, oldest = catalog.span()
    for found in ranges(catalog):
        newest = max(newest, found.range.end) if newest else found.range.end
        oldest = min(oldest, found.range.start) if oldest else found.range.start
    return newest, oldest
