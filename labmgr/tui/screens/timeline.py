"""Timeline: the catalog's hours against servers and dumps; Enter restores the lab to an hour.

Every catalog, history and restore call runs in a worker; the grid asks for
pages of hours as they come into view.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from ...probes.report import exit_code
from ...timeparse import parse_point
from ..backend import ProbeRun, hour_of
from ..messages import (CompleteHoursLoaded, DriftLoaded, Failed, FlaggedLoaded, LabLoaded, Loaded, PageLoaded,
                        ShapeLoaded, VerdictsLoaded)
from ..widgets.timeline_grid import HOUR, LEGEND, TimelineGrid, describe
from .base import MainScreen
from .dialogs import AskScreen
from .profile import ProfileScreen
from .progress import ProgressScreen


class TimelineScreen(MainScreen):
    NAME = "Timeline"
    BINDINGS = [
        Binding("g", "go_to", "Go to date"),
        Binding("a", "all_present", "All servers present"),
        Binding("r", "reload", "Refresh"),
        Binding("b", "bisect", "Bisect", show=False),
        Binding("d", "profile", "Data profile", show=False),     # the legend names it when an hour drifted
    ]

    def __init__(self) -> None:
        super().__init__()
        self.spec: Path | None = None
        self.complete: list[datetime] | None = None
        self.filter_on = False

    def compose_body(self) -> ComposeResult:
        yield TimelineGrid(id="grid")
        yield Static(id="detail", classes="detail")
        yield Static(Text("  ".join(f"{g} {what}" for g, what in LEGEND) + "  ▶ lab's point"),
                     id="legend", classes="legend")

    @property
    def grid(self) -> TimelineGrid:
        return self.query_one("#grid", TimelineGrid)

    def on_mount(self) -> None:
        self.grid.focus()

    def reload(self) -> None:
        spec = self.app.timeline_spec()
        if spec is None:
            self.say("no lab or environment: choose a lab on Labs (1)")
            return
        if spec != self.spec:                  # another environment: a new grid
            self.spec, self.complete = spec, None
            self.load_shape(spec)
            self.load_flagged(spec)
        self.load_verdicts()

    # workers --------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="shape")
    def load_shape(self, spec: Path) -> None:
        try:
            self.post_message(ShapeLoaded(self.app.backend.timeline_shape(spec)))
        except Exception as exc:
            self.post_message(Failed("reading the dump catalog", exc))

    @work(thread=True, group="pages")
    def load_page(self, spec: Path, page: int, since: datetime, until: datetime) -> None:
        try:
            self.post_message(PageLoaded(page, self.app.backend.timeline(spec, since, until)))
        except Exception as exc:
            self.post_message(Failed("reading the dump catalog", exc))

    @work(thread=True, exclusive=True, group="complete")
    def load_complete(self, spec: Path, since: datetime, until: datetime) -> None:
        try:
            self.post_message(CompleteHoursLoaded(self.app.backend.complete_hours(spec, since, until)))
        except Exception as exc:
            self.post_message(Failed("finding the hours with every dump", exc))

    @work(thread=True, exclusive=True, group="flagged")
    def load_flagged(self, spec: Path) -> None:
        try:
            self.post_message(FlaggedLoaded(self.app.backend.flagged_hours(spec)))
        except Exception as exc:
            self.post_message(Failed("reading the scan results", exc))

    @work(thread=True, exclusive=True, group="verdicts")
    def load_verdicts(self) -> None:
        lab = self.app.lab
        if lab is None:
            return
        try:
            self.post_message(VerdictsLoaded(self.app.backend.verdicts(lab.name)))
            self.post_message(DriftLoaded(self.app.backend.drifted_hours(lab.name)))
        except Exception as exc:
            self.post_message(Failed("reading the probe history", exc))

    @work(thread=True, exclusive=True, group="profile")
    def load_profile(self, lab: str, hour: datetime) -> None:
        try:
            self.post_message(Loaded("profile", (hour, self.app.backend.hour_profile(lab, hour))))
        except Exception as exc:
            self.post_message(Failed("reading the hour's data profile", exc))

    # answers ----------------------------------------------------------------------
    @on(ShapeLoaded)
    def shaped(self, message: ShapeLoaded) -> None:
        shape = message.shape
        self.grid.set_shape(shape)
        if shape.newest is None:
            self.say(f"the catalog of {shape.environment} has no dumps yet ('labmgr dumps collect')")
        else:
            self.say(f"{self.grid.row_count} hours of dumps, {shape.oldest:%Y-%m-%d %H:%M} to "
                     f"{shape.newest:%Y-%m-%d %H:%M} UTC")

    @on(TimelineGrid.PageWanted)
    def page_wanted(self, message: TimelineGrid.PageWanted) -> None:
        since, until = self.grid.page_range(message.page)
        self.load_page(self.spec, message.page, since, until)

    @on(PageLoaded)
    def page_loaded(self, message: PageLoaded) -> None:
        self.grid.add_page(message.page, message.grid)

    @on(CompleteHoursLoaded)
    def complete_loaded(self, message: CompleteHoursLoaded) -> None:
        self.complete = message.hours
        if self.filter_on:
            self.grid.set_filter(self.complete)
            self.say(f"{len(self.complete)} hours have every server's dumps")

    @on(FlaggedLoaded)
    def flagged_loaded(self, message: FlaggedLoaded) -> None:
        self.grid.set_flagged(message.hours)
        # the legend names '!' only when a store was scanned, '≈' only when some hour drifted
        drift = "  ≈ data drifted (d: profile)" if self.grid.drifted else ""
        self.query_one("#legend", Static).update(Text(self._legend() + drift))

    @on(DriftLoaded)
    def drift_loaded(self, message: DriftLoaded) -> None:
        self.grid.set_drifted(message.hours)
        if message.hours:
            self.query_one("#legend", Static).update(Text(self._legend() + "  ≈ data drifted (d: profile)"))

    def _legend(self) -> str:
        legend = "  ".join(f"{g} {what}" for g, what in LEGEND) + "  ▶ lab's point"
        return legend + ("  ! rules matched (dumps scan)" if self.grid.flagged else "")

    @on(Loaded)
    def profile_loaded(self, message: Loaded) -> None:
        if message.what != "profile":
            return
        hour, profile = message.value
        if profile is None:
            self.say(f"no data profile of {hour:%Y-%m-%d %H:%M} UTC: restore and probe it first")
            return
        self.app.push_screen(ProfileScreen(profile))

    @on(VerdictsLoaded)
    def verdicts_loaded(self, message: VerdictsLoaded) -> None:
        lab = self.app.lab
        current = hour_of(parse_point(lab.point)) if lab and lab.point else None
        self.grid.set_verdicts(message.verdicts, current)

    @on(Failed)
    def failed(self, message: Failed) -> None:
        self.show_error(message.what, message.error)

    @on(TimelineGrid.CursorMoved)
    def cursor_moved(self, message: TimelineGrid.CursorMoved) -> None:
        if message.hour is None:
            self.query_one("#detail", Static).update("")
            return
        verdict = self.grid.verdicts.get(message.hour)
        probes = "" if verdict is None else f" · probes {'PASS' if verdict else 'FAIL'}"
        if message.hour in self.grid.flagged:
            probes += " · YARA rules matched in its dumps"
        if message.hour in self.grid.drifted:
            probes += " · its data drifted (d: profile)"
        where = f"{message.column[0]}/{message.column[1]}: {describe(message.cell)}" if message.column else ""
        self.query_one("#detail", Static).update(
            Text(f"{message.hour:%Y-%m-%d %H:%M} UTC · {where}{probes}"))

    # keys -----------------------------------------------------------------------
    def action_reload(self) -> None:
        self.spec = None
        self.reload()

    def action_profile(self) -> None:
        hour = self.grid.hour_at(self.grid.cursor_row)
        if self.app.lab is None or hour is None:
            self.say("choose a lab (1) and an hour first")
            return
        self.load_profile(self.app.lab.name, hour)

    def action_go_to(self) -> None:
        def go(text: str | None) -> None:
            if not text:
                return
            try:
                moment = parse_point(text, now=self.app.clock())
            except Exception as exc:
                self.show_error("going to a date", exc)
                return
            self.grid.go_to(hour_of(moment))
            self.grid.focus()
        self.app.push_screen(AskScreen("Go to (2026-11-20 08:00, yesterday, 3 days ago)", ""), go)

    def action_all_present(self) -> None:
        shape = self.grid.shape
        if shape is None or shape.newest is None:
            return
        self.filter_on = not self.filter_on
        if not self.filter_on:
            self.grid.set_filter(None)
            self.say("every hour")
        elif self.complete is not None:
            self.grid.set_filter(self.complete)
            self.say(f"{len(self.complete)} hours have every server's dumps")
        else:
            self.say("finding the hours with every server's dumps…")
            self.load_complete(self.spec, shape.oldest, shape.newest + HOUR)

    @on(TimelineGrid.RestoreRequested)
    def restore(self, message: TimelineGrid.RestoreRequested) -> None:
        lab = self.app.lab
        if lab is None:
            self.say("choose a lab first (Labs: 1, Enter): the timeline shows the environment's dumps only")
            return
        backend, probes, at = self.app.backend, self.app.probes, message.hour

        def operation(reporter) -> tuple[str, ProbeRun | None]:
            point = backend.restore(lab.name, at, reporter)
            if probes is None:
                return point, None
            with reporter.step("probes") as step:
                run = backend.run_probes(lab.name, probes, None)
                step.update(completed=1, total=1)
            return point, run

        self.app.push_screen(ProgressScreen(f"restore lab {lab.name} to {at:%Y-%m-%d %H:%M} UTC", operation),
                             self.restored)

    def action_bisect(self) -> None:
        """Bisect from the oldest hour up to the one under the cursor (the bad end)."""
        lab, probes, until = self.app.lab, self.app.probes, self.grid.hour_at(self.grid.cursor_row)
        if lab is None or probes is None:
            self.say("bisect needs a lab (Labs: 1, Enter) and a probe file (labmgr tui --probes FILE)")
            return
        backend = self.app.backend

        def operation(reporter) -> str:
            return backend.bisect(lab.name, probes, until, reporter)

        title = f"bisect lab {lab.name} up to {until:%Y-%m-%d %H:%M} UTC" if until else f"bisect lab {lab.name}"
        self.app.push_screen(ProgressScreen(title, operation), self.bisected)

    def bisected(self, message) -> None:
        self.refresh_lab()
        if message:
            self.say(message)
            self.notify(message)

    def restored(self, result) -> None:
        self.refresh_lab()
        if not result:
            return
        point, run = result
        text = f"lab {self.app.lab.name} is at {point}"
        if run is not None:
            passed = sum(1 for r in run.results if r.passed)
            verdict = "PASS" if exit_code(run.results) == 0 else "FAIL"
            text += f" · probes {verdict}: {passed} of {len(run.results)} passed"
        self.say(text)
        self.notify(text)

    @work(thread=True, exclusive=True, group="lab")
    def refresh_lab(self) -> None:
        """After a restore, success or not, show where the lab really is (its record)."""
        try:
            self.post_message(LabLoaded(self.app.backend.lab(self.app.lab.name)))
        except Exception as exc:
            self.post_message(Failed("reading the lab", exc))

    @on(LabLoaded)
    def lab_loaded(self, message: LabLoaded) -> None:
        self.app.select_lab(message.lab)
        self.query_one("#context", Static).update(Text(self.app.context_line()))
        self.load_verdicts()
