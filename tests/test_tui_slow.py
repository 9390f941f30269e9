"""A slow hypervisor must not freeze the TUI: core calls run in workers, keys keep being answered.

The fake core's slow calls hang until the test releases them, so every key below is
answered while the core is provably still busy (no fixed sleep, nothing left to timing).
"""

from __future__ import annotations

import asyncio

from labmgr.tui.screens.help import HelpScreen
from labmgr.tui.screens.progress import ProgressScreen
from labmgr.tui.widgets.timeline_grid import TimelineGrid
from tui_fake import FakeBackend, make_app


def test_keys_are_answered_while_the_core_takes_seconds() -> None:
    backend = FakeBackend(slow=("labs", "timeline_shape", "restore"))

    async def scenario():
        app = make_app(backend, lab=None)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause()
            assert [name for name, _ in backend.calls] == ["labs"]      # asked, and still waiting
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape", "4", "5", "1")
            assert app.current_mode == "labs"
            # every key was answered while the core was still busy with the labs
            assert "labs" in backend.running
            assert "asking the hypervisor" in str(app.screen.query_one("#status").render())
            assert app.screen.query_one("#labs").row_count == 0
            # the answer arrives when the core gives it, and is shown
            backend.release("labs")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "labs" not in backend.running
            assert app.screen.query_one("#labs").row_count == 3

            # a restore that takes seconds: the progress screen is there at once, and keys still work
            app.select_lab(backend.world.labs["shop-1"])
            await pilot.press("2")
            await pilot.pause()
            grid = app.screen.query_one(TimelineGrid)
            await pilot.press("down", "down", "question_mark")   # the shape is still loading
            assert isinstance(app.screen, HelpScreen) and "timeline_shape" in backend.running
            await pilot.press("escape")
            backend.release("timeline_shape")
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press("down", "enter")
            await pilot.pause()
            assert isinstance(app.screen, ProgressScreen) and not app.screen.finished
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen) and "restore" in backend.running
            await pilot.press("escape")
            assert isinstance(app.screen, ProgressScreen) and not app.screen.finished
            backend.release("restore")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert not isinstance(app.screen, ProgressScreen)
            assert app.lab.point == "2026-11-21T08:00Z" and grid.cursor_row == 1
    asyncio.run(scenario())
