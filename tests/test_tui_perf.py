"""The timeline over a year of hourly dumps for 20 servers: no widget per hour (the grid draws lines),
and only the weeks in view are read. How fast it paints and scrolls is measured by bench/tui.py
(docs/benchmarks.md), not judged here: timing limits fail on a loaded machine, not on slow code."""

from __future__ import annotations

import asyncio

import pytest

from labmgr.tui.app import LabmgrApp
from labmgr.tui.backend import CoreBackend
from labmgr.tui.widgets.timeline_grid import TimelineGrid
from tui_year import END, make_store


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("year"))


def test_the_grid_is_lines_not_widgets(year) -> None:
    async def scenario():
        app = LabmgrApp(CoreBackend(), spec=year, clock=lambda: END)
        async with app.run_test(size=(160, 50)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            grid = app.screen.query_one(TimelineGrid)
            assert grid.row_count == 365 * 24 and len(grid.shape.columns) == 40
            assert len(list(app.screen.walk_children())) < 40
            # only the pages in view were read from the catalog
            assert set(grid.pages) <= {0, 1}
    asyncio.run(scenario())
