"""What the report shows of each hour's evidence (``evidence.html.j2``): screenshots as data: URIs,
and the row counts per hour per table with each change against the hour before."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from ..timeparse import parse_point

MAX_SCREENSHOT = 4 * 1024 * 1024      # bytes: a bigger file is named, not embedded


def data_uri(path: str) -> str:
    """The PNG at ``path`` as a data: URI ('' when it is gone or too big to embed)."""
    try:
        data = Path(path).read_bytes() if path else b""
    except OSError:
        return ""
    if not data or len(data) > MAX_SCREENSHOT:
        return ""
    return "data:image/png;base64," + base64.b64encode(data).decode()


@dataclass
class CountCell:
    rows: int | None
    change: int | None          # against the same table at the hour before; None: first hour or missing

    @property
    def css(self) -> str:
        if self.rows is None:
            return "gone"
        if self.change is None or self.change == 0:
            return ""
        return "grew" if self.change > 0 else "shrank"


def count_table(counts: dict[str, list[tuple[str, int]]]) -> tuple[list[str], list[tuple[str, list[CountCell]]]]:
    """(tables, [(hour, cells)]): one row per restored hour, one column per table, oldest hour first."""
    tables = sorted(counts)
    by_table = {table: dict(rows) for table, rows in counts.items()}
    hours = sorted({point for rows in counts.values() for point, _ in rows}, key=parse_point)
    out = []
    previous: dict[str, int | None] = {}
    for hour in hours:
        cells = []
        for table in tables:
            rows = by_table[table].get(hour)
            before = previous.get(table)
            cells.append(CountCell(rows, None if rows is None or before is None else rows - before))
            previous[table] = rows
        out.append((hour, cells))
    return tables, out
