"""The TUI's part of the last clean hour, on the fake core: hours a YARA rule matched in, and bisect ('b')."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from textual.widgets import Static

from labmgr.tui.screens.progress import ProgressScreen
from labmgr.tui.widgets.timeline_grid import TimelineGrid
from tui_fake import NEWEST, FakeBackend, make_app, settle


def text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def line_of(grid: TimelineGrid, hour) -> str:
    for y in range(grid.size.height):
        line = "".join(segment.text for segment in grid.render_line(y))
        if line.startswith(f"{hour:%Y-%m-%d %H:%M}"):
            return line
    raise AssertionError(f"{hour} is not on screen")


def test_hours_with_rule_matches_are_marked_and_described() -> None:
    backend = FakeBackend()
    backend.world.flagged = {NEWEST, NEWEST - timedelta(hours=1)}

    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            grid = app.screen.query_one(TimelineGrid)
            assert grid.current == NEWEST - timedelta(hours=2)
            assert line_of(grid, NEWEST)[17:19] == " !"
            assert line_of(grid, NEWEST - timedelta(hours=1))[17:19] == " !"
            assert line_of(grid, NEWEST - timedelta(hours=2))[17:19] == "▶ "
            assert "! rules matched (dumps scan)" in text(app, "#legend")
            assert text(app, "#detail").endswith("· YARA rules matched in its dumps")
            await pilot.press("down", "down")
            assert "YARA" not in text(app, "#detail")
    asyncio.run(scenario())


def test_without_scans_the_legend_is_as_before() -> None:
    async def scenario():
        app = make_app(FakeBackend())
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            assert "!" not in text(app, "#legend")
    asyncio.run(scenario())


def test_b_bisects_up_to_the_cursor_with_progress_and_leaves_the_lab_at_the_last_good_hour() -> None:
    backend = FakeBackend()

    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            await pilot.press("b")
            await pilot.pause(0.1)
            await settle(pilot)
            assert not isinstance(app.screen, ProgressScreen)
            assert ("bisect", ("shop-1", app.probes, NEWEST)) in backend.calls
            assert "last good hour 2026-11-21T04:00Z, first bad hour 2026-11-21T07:00Z" in text(app, "#status")
            assert app.lab.point == "2026-11-21T04:00Z"
            assert app.screen.query_one(TimelineGrid).current == NEWEST - timedelta(hours=5)
    asyncio.run(scenario())


def test_b_without_a_probe_file_says_how() -> None:
    async def scenario():
        app = make_app(FakeBackend(), probes=None)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            await pilot.press("b")
            assert "a probe file (labmgr tui --probes FILE)" in text(app, "#status")
    asyncio.run(scenario())
