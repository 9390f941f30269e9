"""A big catalog for the TUI's speed: hourly dumps of 20 servers x 2 sources, a year by default.

Rows go straight into a real Catalog's table in one transaction (350,400 rows
take a second or two; DumpRecord objects would take several). Also writes an
environment spec naming those servers, whose ``dumps.store`` is the catalog.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from labmgr.dumps.catalog import Catalog

END = datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)
SOURCES = (("db", "postgres", "pgdump"), ("files", "files", "tar"))


def make_store(root: Path, hours: int = 365 * 24, servers: int = 20, end: datetime = END) -> Path:
    """The spec of an environment whose store holds ``hours`` hours of dumps ending at ``end``."""
    root.mkdir(parents=True, exist_ok=True)
    store = root / "store"
    names = [f"srv{n:02d}" for n in range(servers)]
    spec = {
        "name": "year",
        "networks": [{"name": "lan", "cidr": "10.99.0.0/16"}],
        "servers": [{"name": name, "hostname": f"{name}.year.test", "domain": f"year-{name}",
                     "nics": [{"network": "lan", "ip": f"10.99.{n // 200}.{n % 200 + 10}",
                               "mac": f"52:54:00:99:{n // 256:02x}:{n % 256:02x}"}],
                     "dumps": [{"name": "db", "kind": "postgres", "database": "shop"},
                               {"name": "files", "kind": "files", "path": "/srv"}]}
                    for n, name in enumerate(names)],
        "dumps": {"store": str(store)},
    }
    path = root / "year.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    rng = random.Random(7)
    first = int(end.timestamp()) - (hours - 1) * 3600

    def rows():
        for hour in range(hours):
            taken = first + hour * 3600
            day = datetime.fromtimestamp(taken, timezone.utc).strftime("%Y-%m-%d")
            for server in names:
                for source, kind, ext in SOURCES:
                    roll = rng.random()
                    if roll < 0.005:
                        continue                    # a missed hour
                    state = "bad" if roll < 0.01 else "good" if roll < 0.5 else "unverified"
                    yield (None, server, source, kind, taken, 1 << 20, "0" * 64, "0" * 64, int(source == "files"),
                           f"{server}/{source}/{day}/{server}--{source}--{taken}.{ext}", state, None, "",
                           "agent", taken, "[]")
    with Catalog(store) as catalog, catalog.db:
        catalog.db.executemany(
            "INSERT INTO dumps (id, server, source, kind, taken_at, size, sha256, content_sha256, encrypted, path, "
            "state, verified_at, note, collector, collected_at, recipients) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
    return path


async def first_paint(spec: Path, size=(160, 50)) -> tuple[float, float, float, float]:
    """Open the real TUI (CoreBackend) on ``spec``'s timeline: seconds to the first painted data,
    mean seconds per PageDown over 40 presses (key to painted, through the test pilot), seconds to
    jump to the oldest hour and paint it, and seconds to draw every visible line of the grid once."""
    from labmgr.tui.app import LabmgrApp
    from labmgr.tui.backend import CoreBackend
    from labmgr.tui.widgets.timeline_grid import TimelineGrid

    started = time.perf_counter()
    app = LabmgrApp(CoreBackend(), spec=spec, clock=lambda: END)
    async with app.run_test(size=size) as pilot:
        grid = None
        while grid is None or 0 not in grid.pages:
            await asyncio.sleep(0.002)
            found = app.screen.query(TimelineGrid)
            grid = found.first() if found else None
        await pilot.pause()
        painted = time.perf_counter() - started

        async def painted_at(row: int) -> None:
            page = grid.page_of(grid.hour_at(row))
            while page not in grid.pages:
                await asyncio.sleep(0.002)
            await pilot.pause()

        begun = time.perf_counter()
        for _ in range(40):
            await pilot.press("pagedown")
            await painted_at(grid.cursor_row)
        per_page = (time.perf_counter() - begun) / 40
        begun = time.perf_counter()
        await pilot.press("end")
        await painted_at(grid.cursor_row)
        jump = time.perf_counter() - begun
        assert grid.cursor_row == grid.row_count - 1
        lines = grid.scrollable_content_region.height
        begun = time.perf_counter()
        for _ in range(20):
            for y in range(lines):
                grid.render_line(y)
        frame = (time.perf_counter() - begun) / 20
    return painted, per_page, jump, frame
