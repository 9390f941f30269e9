"""The TUI's view of issue 19's evidence, on the fake core: drifted hours marked on the timeline, an
hour's profile next to the one before (d), the console evidence on the Servers screen; and the fake
answering as the real core does for the same profiles."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from textual.widgets import DataTable, Static

from labmgr.history import History
from labmgr.history_evidence import compare_hour, record_profiles
from labmgr.timeparse import format_point
from labmgr.tui.screens.profile import ProfileScreen
from labmgr.tui.widgets.timeline_grid import TimelineGrid
from tui_fake import NEWEST, FakeBackend, World, fake_profile, make_app, settle

HOURS = {NEWEST - timedelta(hours=4): 100, NEWEST - timedelta(hours=3): 110, NEWEST - timedelta(hours=2): 70}


def world() -> World:
    return World(profiles={hour: {"db": fake_profile(rows)} for hour, rows in HOURS.items()},
                 consoles={"db": ("[  OK  ] Started ssh.service\n\nDebian GNU/Linux 12 db01 ttyS0\n\ndb01 login: ",
                                  "/var/lib/labmgr/evidence/shop/run-7/db.png")})


def text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def test_a_drifted_hour_is_marked_and_d_shows_its_profile_next_to_the_hour_before() -> None:
    backend = FakeBackend(world())

    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            grid = app.screen.query_one(TimelineGrid)
            assert grid.drifted == {NEWEST - timedelta(hours=2)}
            assert "≈ data drifted" in text(app, "#legend")
            await pilot.press("down", "down")
            assert "its data drifted (d: profile)" in text(app, "#detail")
            await pilot.press("d")
            await settle(pilot)
            assert isinstance(app.screen, ProfileScreen)
            table = app.screen.query_one("#profile", DataTable)
            rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
            assert rows[0] == ["≠", "db: table shop.invoices", "110 rows, max id 110", "70 rows, max id 70"]
            assert rows[1][0] == " " and rows[1][1] == "db: files sessions"
            await pilot.press("escape")
            await pilot.press("down", "down", "down")       # an hour never profiled
            await pilot.press("d")
            await settle(pilot)
            assert not isinstance(app.screen, ProfileScreen)
    asyncio.run(scenario())


def test_the_servers_screen_shows_the_console_evidence_of_the_last_probe_run() -> None:
    backend = FakeBackend(world())

    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("4")
            await settle(pilot)
            shown = text(app, "#access")
            assert "screen at the last probe run: /var/lib/labmgr/evidence/shop/run-7/db.png" in shown
            assert "serial console's last lines" in shown and "db01 login:" in shown
            await pilot.press("down")
            assert "serial console" not in text(app, "#access")      # app has no evidence kept
    asyncio.run(scenario())


def test_the_fake_compares_hours_as_the_core_does(tmp_path: Path) -> None:
    fake = FakeBackend(world())
    with History(tmp_path) as history:
        for run, (hour, rows) in enumerate(sorted(HOURS.items()), start=1):
            point = format_point(hour + timedelta(minutes=30))
            history.db.execute("INSERT INTO history_probe_runs (id, lab, environment, point, started_at, "
                               "finished_at, exit_code) VALUES (?, 'shop-1', 'shop', ?, '', '', 0)", (run, point))
            record_profiles(history, run, "shop-1", "shop", point, {"db": (fake_profile(rows), 0.1)})
        for hour in HOURS:
            point, earlier, rows = compare_hour(history, "shop", hour)
            answer = fake.hour_profile("shop-1", hour)
            assert rows == answer.rows and bool(earlier) == bool(answer.previous)
        assert compare_hour(history, "shop", NEWEST) is None and fake.hour_profile("shop-1", NEWEST) is None
