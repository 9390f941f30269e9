"""Snapshots of every TUI screen, dark and light (pytest-textual-snapshot; SVGs in tests/__snapshots__).

The fake core and a fixed clock make every screen the same on every run.
Update after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the SVGs before committing them.
"""

from __future__ import annotations

import asyncio

import pytest

from labmgr.tui.app import DARK, LIGHT
from tui_fake import FakeBackend, make_app, settle

SIZE = (120, 34)
THEMES = [pytest.param(DARK, id="dark"), pytest.param(LIGHT, id="light")]


@pytest.fixture
def backend():
    fake = FakeBackend()
    yield fake
    for gate in fake.gates.values():
        gate.set()


def keys(*pressed: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        if pressed:
            await pilot.press(*pressed)
            await settle(pilot)
    return run_before


@pytest.mark.parametrize("theme", THEMES)
def test_labs(snap_compare, backend, theme) -> None:
    assert snap_compare(make_app(backend, lab=None, theme=theme), terminal_size=SIZE, run_before=keys())


@pytest.mark.parametrize("theme", THEMES)
def test_timeline(snap_compare, backend, theme) -> None:
    # the cursor on the lab's hour, second column
    assert snap_compare(make_app(backend, theme=theme), terminal_size=SIZE,
                        run_before=keys("down", "down", "right"))


@pytest.mark.parametrize("theme", THEMES)
def test_restore_progress(snap_compare, backend, theme) -> None:
    reached, opened = backend.gate("restore")

    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("down", "down", "down", "enter")
        assert await asyncio.to_thread(reached.wait, 10)
        await pilot.pause(0.3)
    app = make_app(backend, theme=theme)
    exit_app = app.exit

    def exit_then_let_the_restore_finish(*args, **kwargs):     # after the screenshot: no 30 s wait
        opened.set()
        return exit_app(*args, **kwargs)
    app.exit = exit_then_let_the_restore_finish
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.parametrize("theme", THEMES)
def test_restore_failed(snap_compare, backend, theme) -> None:
    from labmgr.dumps.errors import DumpError

    backend.world.restore_error = DumpError(
        "server db: restoring db/invoices 2026-11-21T06:00Z failed (exit 1): pg_restore: error: could not "
        "execute query: ERROR: relation \"invoices\" already exists", hint="the lab was put back where it was")
    assert snap_compare(make_app(backend, theme=theme), terminal_size=SIZE,
                        run_before=keys("down", "down", "down", "enter"))


@pytest.mark.parametrize("theme", THEMES)
def test_probes(snap_compare, backend, theme) -> None:
    assert snap_compare(make_app(backend, theme=theme), terminal_size=SIZE, run_before=keys("3", "down"))


@pytest.mark.parametrize("theme", THEMES)
def test_probe_output(snap_compare, backend, theme) -> None:
    assert snap_compare(make_app(backend, theme=theme), terminal_size=SIZE,
                        run_before=keys("3", "down", "enter"))


@pytest.mark.parametrize("theme", THEMES)
def test_servers(snap_compare, backend, theme) -> None:
    assert snap_compare(make_app(backend, theme=theme), terminal_size=SIZE, run_before=keys("4"))


@pytest.mark.parametrize("theme", THEMES)
def test_signoff(snap_compare, backend, theme) -> None:
    assert snap_compare(make_app(backend, theme=theme), terminal_size=SIZE,
                        run_before=keys("5", "s", *"Q4 orders present"))


@pytest.mark.parametrize("theme", THEMES)
def test_help(snap_compare, backend, theme) -> None:
    assert snap_compare(make_app(backend, theme=theme), terminal_size=SIZE, run_before=keys("question_mark"))
