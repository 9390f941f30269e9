"""Pilot tests of every TUI screen, on the fake core (tests/tui_fake.py)."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from datetime import timedelta

import pytest
from textual.command import CommandPalette
from textual.widgets import DataTable, Input, Static

from labmgr.dumps.errors import DumpError
from labmgr.errors import HypervisorError, LabError
from labmgr.history import Signoff
from labmgr.lab.servers import ServerInfo
from labmgr.tui.app import LIGHT
from labmgr.tui.screens.dialogs import AskScreen, ConfirmScreen, ExportScreen, NewLabScreen, TextScreen
from labmgr.tui.screens.help import HelpScreen
from labmgr.tui.screens.progress import ProgressScreen
from labmgr.tui.screens.shares import SharesScreen
from labmgr.tui.widgets.timeline_grid import TimelineGrid
from tui_fake import HOURS, NEWEST, FakeBackend, make_app, settle


def run(scenario) -> None:
    asyncio.run(scenario())


def text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def rows(app, selector: str) -> list[list[str]]:
    table = app.screen.query_one(selector, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


@pytest.fixture
def backend():
    fake = FakeBackend()
    yield fake
    for gate in fake.gates.values():        # never leave a worker thread waiting
        gate.set()


# labs ----------------------------------------------------------------------------
def test_labs_list_state_point_lease_and_last_probe(backend) -> None:
    async def scenario():
        app = make_app(backend, lab=None)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            assert app.current_mode == "labs"
            assert rows(app, "#labs") == [
                ["broken", "failed", "shop", "clean clone", "—", "—", "0/2", "—"],
                ["drill", "up", "shop", "clean clone", "expired", "—", "2/2", "—"],
                ["shop-1", "up", "shop", "2026-11-21T07:00Z", "8h 00m", "3/4 passed", "2/2", "1"],
            ]
            await pilot.press("down", "down", "enter")
            await settle(pilot)
            assert app.current_mode == "timeline" and app.lab.name == "shop-1"
            assert "lab shop-1 (up)" in text(app, "#context") and "2026-11-21T07:00Z" in text(app, "#context")
    run(scenario)


def test_create_extend_and_tear_down_a_lab(backend) -> None:
    async def scenario():
        app = make_app(backend, lab=None, spec="/srv/labmgr/shop.yaml")
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("1")
            await settle(pilot)
            await pilot.press("n")
            await settle(pilot)
            assert isinstance(app.screen, NewLabScreen)
            await pilot.click("#name")
            await pilot.press(*"mine")
            await pilot.click("#create")
            await settle(pilot)
            assert ("snapshots", (app.spec,)) in backend.calls
            assert ("lab_up", (app.spec, "mine", None)) in backend.calls     # no snapshot chosen: the newest
            assert "mine" in [r[0] for r in rows(app, "#labs")]
            # extend the lease of shop-1 (broken, drill, mine, shop-1)
            await pilot.press("down", "down", "down", "e")
            await settle(pilot)
            assert isinstance(app.screen, AskScreen)
            await pilot.press("enter")          # the default: 8h
            await settle(pilot)
            assert ("extend_lease", ("shop-1", 8)) in backend.calls
            assert [r[4] for r in rows(app, "#labs") if r[0] == "shop-1"] == ["16h 00m"]
            # a bad extension is one clear line, nothing called
            await pilot.press("e")
            app.screen.query_one("#answer", Input).value = "forever"
            await pilot.press("enter")
            await settle(pilot)
            assert "'forever' is not a lease extension" in text(app, "#status")
            # tear down, after saying yes
            await pilot.press("d")
            await settle(pilot)
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await settle(pilot)
            assert "shop-1" not in [r[0] for r in rows(app, "#labs")]
    run(scenario)


def test_a_core_error_is_shown_in_full(backend) -> None:
    def handler(name, args):
        if name == "labs":
            raise HypervisorError("libvirt at qemu:///system is not reachable: Failed to connect socket",
                                  hint="start it with 'libvirtd -d'")
        return NotImplemented

    async def scenario():
        app = make_app(FakeBackend(handler=handler), lab=None)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            assert text(app, "#status") == ("listing the labs: libvirt at qemu:///system is not reachable: "
                                            "Failed to connect socket (start it with 'libvirtd -d')")
            assert app.screen.query_one("#status").has_class("error")
    run(scenario)


# timeline --------------------------------------------------------------------------
def test_the_timeline_grid_moves_and_describes_cells(backend) -> None:
    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            grid = app.screen.query_one(TimelineGrid)
            assert app.current_mode == "timeline" and grid.row_count == HOURS
            assert grid.has_focus
            assert text(app, "#detail") == "2026-11-21 09:00 UTC · db/invoices: not verified yet, 1 dump"
            await pilot.press("down", "down", "right")
            assert grid.hour_at(grid.cursor_row) == NEWEST - timedelta(hours=2)
            assert text(app, "#detail") == "2026-11-21 07:00 UTC · db/sessions: not verified yet, 1 dump · probes FAIL"
            await pilot.press("down", "down", "down", "right")   # 04:00: uploads, encrypted
            assert "app/uploads: not verified yet, encrypted, 1 dump" in text(app, "#detail")
            await pilot.press("left", "down")                  # 03:00? no: 04:00 + 1 row = 03:00, sessions
            assert text(app, "#detail").startswith("2026-11-21 03:00 UTC · db/sessions: verified")
            # the grid draws only what is visible: a handful of widgets, whatever the catalog holds
            assert len(list(app.screen.walk_children())) < 40
            await pilot.press("end")
            await settle(pilot)
            assert grid.cursor_row == HOURS - 1 and grid.scroll_offset.y > 0
            await pilot.press("home")
            assert grid.cursor_row == 0 and grid.scroll_offset.y == 0
    run(scenario)


def test_go_to_a_date_and_filter_to_complete_hours(backend) -> None:
    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            grid = app.screen.query_one(TimelineGrid)
            await pilot.press("g")
            assert isinstance(app.screen, AskScreen)
            await pilot.press(*"2026-11-20 08:00", "enter")
            await settle(pilot)
            assert grid.hour_at(grid.cursor_row) == NEWEST - timedelta(hours=25)
            await pilot.press("g", *"yesterday", "enter")        # relative to the app's clock (09:30)
            await settle(pilot)
            assert grid.hour_at(grid.cursor_row) == NEWEST - timedelta(hours=24)
            await pilot.press("g", *"not a date", "enter")
            await settle(pilot)
            assert "cannot read 'not a date' as a point in time" in text(app, "#status")
            await pilot.press("a")
            await settle(pilot)
            complete = backend.complete_hours(None, NEWEST - timedelta(hours=HOURS), NEWEST + timedelta(hours=1))
            assert grid.row_count == len(complete) < HOURS
            shown = [grid.hour_at(i) for i in range(grid.row_count)]
            assert shown == sorted(complete, reverse=True)
            assert f"{len(complete)} hours have every server's dumps" in text(app, "#status")
            await pilot.press("a")
            assert grid.row_count == HOURS
    run(scenario)


def test_a_click_moves_the_cursor_and_a_double_click_restores(backend) -> None:
    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            grid = app.screen.query_one(TimelineGrid)
            await pilot.click(TimelineGrid, offset=(40, 2 + 3))     # the 4th row, second column
            assert grid.cursor_row == 3 and grid.cursor_col == 1
            await pilot.click(TimelineGrid, offset=(40, 2 + 3), times=2)
            await settle(pilot)
            assert ("restore", ("shop-1", NEWEST - timedelta(hours=3))) in backend.calls
    run(scenario)


# restore progress ----------------------------------------------------------------------
def test_enter_restores_with_live_stages_then_probes(backend) -> None:
    reached, gate = backend.gate("restore")

    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            await pilot.press("down", "down", "down", "enter")       # 06:00
            assert await asyncio.to_thread(reached.wait, 10)
            await pilot.pause(0.2)
            screen = app.screen
            assert isinstance(screen, ProgressScreen)
            db, web = screen.servers["db"], screen.servers["app"]
            assert [db.stages[s][0] for s in ("revert", "media", "restore")] == ["done", "start", "pending"]
            assert [web.stages[s][0] for s in ("revert", "media", "restore")] == ["done", "done", "pending"]
            assert str(db.labels["media"].render()).startswith("▶")
            assert str(web.labels["revert"].render()).startswith("✓")
            labels = [row.label for row in screen.steps.values()]
            assert labels == ["check and stage dumps", "snapshot the current point", "restore 2026-11-21T06:00Z"]
            gate.set()
            await settle(pilot)
            assert not isinstance(app.screen, ProgressScreen)
            assert ("restore", ("shop-1", NEWEST - timedelta(hours=3))) in backend.calls
            assert ("run_probes", ("shop-1", app.probes, None)) in backend.calls
            assert app.lab.point == "2026-11-21T06:00Z"
            assert "lab shop-1 is at 2026-11-21T06:00Z · probes PASS: 4 of 4 passed" in text(app, "#status")
            grid = app.screen.query_one(TimelineGrid)
            assert grid.current == NEWEST - timedelta(hours=3) and grid.verdicts[grid.current] is True
    run(scenario)


def test_a_failed_restore_is_shown_in_full_and_the_lab_stays_where_it_was(backend) -> None:
    backend.world.restore_error = DumpError(
        "server db: restoring db/invoices 2026-11-21T06:00Z failed (exit 1): pg_restore: error: "
        "could not execute query: ERROR: relation \"invoices\" already exists",
        hint="the lab was put back at the point it was at")

    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            await pilot.press("down", "down", "down", "enter")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, ProgressScreen) and screen.finished
            assert str(screen.query_one("#outcome").render()) == str(backend.world.restore_error)
            assert screen.servers["db"].stages["media"][0] == "failed"
            await pilot.press("escape")
            await settle(pilot)
            assert app.lab.point == "2026-11-21T07:00Z"           # as the core left it
            assert "at 2026-11-21T07:00Z" in text(app, "#context")
            assert not any(c[0] == "run_probes" for c in backend.calls)
    run(scenario)


def test_cancel_stops_the_restore_at_its_next_stage(backend) -> None:
    reached, gate = backend.gate("restore")

    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            await pilot.press("enter")
            assert await asyncio.to_thread(reached.wait, 10)
            await pilot.press("c")
            assert "cancelling" in str(app.screen.query_one("#hint").render())
            gate.set()
            await settle(pilot)
            assert str(app.screen.query_one("#outcome").render()) == "cancelled by the user"
            # the revert the core does on any failure is not itself cancelled: every server is back
            assert backend.world.reverted == ["db", "app"]
            await pilot.press("escape")
            await settle(pilot)
            assert app.lab.point == "2026-11-21T07:00Z"
    run(scenario)


# probes -------------------------------------------------------------------------------------
def test_probes_table_rerun_and_output(backend) -> None:
    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("3")
            await settle(pilot)
            table = rows(app, "#probes")
            assert [r[0] for r in table] == ["pass", "FAIL", "pass", "pass"]
            assert table[1][1:] == ["invoice-numbers", "db", "sequence_gaps", "0.6 s",
                                    "missing invoice numbers: 7 (1 missing of 1..30)"]
            assert text(app, "#status") == "FAIL: 3 of 4 probes passed at 2026-11-21T07:00Z"
            await pilot.press("down", "enter")
            assert isinstance(app.screen, TextScreen)
            body = str(app.screen.query_one("#body").render())
            assert "missing invoice numbers: 7" in body and "\n6\n8\n" in body
            await pilot.press("escape", "o")
            await settle(pilot)
            assert backend.calls[-1] == ("run_probes", ("shop-1", app.probes, ["invoice-numbers"]))
            assert [r[0] for r in rows(app, "#probes")] == ["pass", "pass", "pass", "pass"]   # the others kept
            await pilot.press("r")
            await settle(pilot)
            assert backend.calls[-1] == ("run_probes", ("shop-1", app.probes, None))
    run(scenario)


def test_without_a_probe_file_running_says_how(backend) -> None:
    async def scenario():
        app = make_app(backend, probes=None)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("3")
            await settle(pilot)
            await pilot.press("r")
            assert "start the TUI with --probes FILE" in text(app, "#status")
            assert not any(c[0] == "run_probes" for c in backend.calls)
    run(scenario)


# servers --------------------------------------------------------------------------------------
def test_servers_and_the_console(backend, tmp_path, monkeypatch) -> None:
    marker = tmp_path / "console-ran"

    def handler(name, args):
        if name in ("console_command", "ssh_command"):
            return ["sh", "-c", f"echo {name} {args[1]} >> {marker}"]
        return NotImplemented
    backend.handler = handler
    suspended = []

    async def scenario():
        app = make_app(backend)

        @contextmanager
        def suspend():
            suspended.append(True)
            yield
        monkeypatch.setattr(app, "suspend", suspend)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("4")
            await settle(pilot)
            table = rows(app, "#servers")
            assert table[0] == ["db", "shop-1-db", "running", "db01.shop.test", "db01.shop.test", "10.66.0.11"]
            assert table[1][4:] == ["—", "agent silent"]
            assert "labmgr ssh shop-1 db01.shop.test" in text(app, "#access")
            await pilot.press("down")
            assert "guest agent of 'shop-1-app' did not answer" in text(app, "#access")
            await pilot.press("c")
            await settle(pilot)
            assert suspended == [True] and marker.read_text() == "console_command app\n"
            await pilot.press("s")
            await settle(pilot)
            assert suspended == [True, True] and marker.read_text().splitlines()[-1] == "ssh_command app"
    run(scenario)


# sign-off -------------------------------------------------------------------------------------
def test_sign_off_and_export_the_report(backend, tmp_path) -> None:
    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("5")
            await settle(pilot)
            assert rows(app, "#signoffs") == [["2026-11-21T09:10:00Z", "2026-11-21T07:00Z", "alice",
                                               "Q3 invoices present"]]
            await pilot.press("s")
            assert app.focused is app.screen.query_one("#note", Input)
            await pilot.press(*"orders of 20 Nov there", "enter")
            await settle(pilot)
            assert ("sign_off", ("shop-1", "alice", "orders of 20 Nov there")) in backend.calls
            assert len(rows(app, "#signoffs")) == 2
            await pilot.press("x")
            await settle(pilot)
            assert isinstance(app.screen, ExportScreen)
            path = app.screen.query_one("#path", Input)
            assert path.value == "shop-1-report.html"
            path.value = str(tmp_path / "shop-1.html")
            await pilot.click("#export")
            await settle(pilot)
            assert backend.exported == {tmp_path / "shop-1.html": "html"}
            assert f"report written to {tmp_path / 'shop-1.html'}" in text(app, "#status")
    run(scenario)


def test_a_refused_sign_off_says_why(backend) -> None:
    def handler(name, args):
        if name == "sign_off" and not args[2].strip():
            raise LabError("a sign-off needs a user and a note saying what was checked",
                           hint='--user NAME --note "Q3 invoices present"')
        return NotImplemented
    backend.handler = handler

    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("5")
            await settle(pilot)
            await pilot.press("s", "enter")
            await settle(pilot)
            assert text(app, "#status") == ('signing off: a sign-off needs a user and a note saying what was '
                                            'checked (--user NAME --note "Q3 invoices present")')
    run(scenario)


def test_share_sign_offs_appear_live_with_their_verdict(backend) -> None:
    async def scenario():
        app = make_app(backend, refresh_seconds=0.2)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("5")
            await settle(pilot)
            backend.world.signoffs["shop-1"].append(Signoff("2026-11-21T07:00Z", "bob", "invoice 7 is missing",
                                                            "2026-11-21T09:20:00Z", "wrong"))
            await pilot.pause(0.6)
            await settle(pilot)
            assert rows(app, "#signoffs")[-1] == ["2026-11-21T09:20:00Z", "2026-11-21T07:00Z", "bob",
                                                  "✗ something is wrong invoice 7 is missing"]
    run(scenario)


# shares -----------------------------------------------------------------------------------------
def test_shares_of_a_lab_withdraw_a_link_and_end_the_share(backend) -> None:
    async def scenario():
        app = make_app(backend, lab=None)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            await pilot.press("down", "down", "s")
            await settle(pilot)
            assert isinstance(app.screen, SharesScreen)
            assert rows(app, "#shares") == [
                ["a1b2c3", "app01.shop.test:80", "https://labmgr.example.com:8443", "2026-11-21T13:00:00Z", name,
                 "valid"] for name in ("alice", "bob")]
            await pilot.press("down", "w")
            await settle(pilot)
            assert ("withdraw_link", ("shop-1", "a1b2c3", "bob")) in backend.calls
            assert [r[5] for r in rows(app, "#shares")] == ["valid", "withdrawn"]
            await pilot.press("x")
            await settle(pilot)
            assert ("end_share", ("shop-1", "a1b2c3")) in backend.calls and rows(app, "#shares") == []
            await pilot.press("escape")
            await settle(pilot)
            assert [r[7] for r in rows(app, "#labs") if r[0] == "shop-1"] == ["—"]
    run(scenario)


# help, palette, themes ------------------------------------------------------------------------
def test_help_palette_and_themes(backend) -> None:
    async def scenario():
        app = make_app(backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            await pilot.press("ctrl+t")
            assert app.theme == LIGHT
            await pilot.press("ctrl+p")
            await settle(pilot)
            assert CommandPalette.is_open(app)
            await pilot.press(*"Go to Servers")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await settle(pilot)
            assert app.current_mode == "servers"
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0
    run(scenario)
