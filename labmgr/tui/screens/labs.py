"""Labs: every lab with its state, environment, point in time, lease, last probe result and open
shares; create, tear down, extend the lease, see and end shares."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from ...lab.lease import lease_hours
from ..backend import LabRow
from ..format import lease_left
from ..messages import Failed, LabsLoaded, Loaded
from .base import MainScreen
from .dialogs import AskScreen, ConfirmScreen, NewLabScreen
from .progress import ProgressScreen
from .shares import SharesScreen

COLUMNS = ("lab", "state", "environment", "point in time", "lease left", "last probe", "running", "shares")


class LabsScreen(MainScreen):
    NAME = "Labs"
    BINDINGS = [
        Binding("enter", "open", "Open"),
        Binding("n", "new", "New lab"),
        Binding("d", "down", "Tear down"),
        Binding("e", "extend", "Extend lease"),
        Binding("s", "shares", "Shares"),
        Binding("r", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[LabRow] = []

    def compose_body(self) -> ComposeResult:
        table = DataTable(id="labs", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table

    def on_mount(self) -> None:
        self.set_interval(self.app.refresh_seconds, self.reload)

    def reload(self) -> None:
        self.say("asking the hypervisor for its labs…")
        self.load()

    @work(thread=True, exclusive=True, group="labs")
    def load(self) -> None:
        try:
            self.post_message(LabsLoaded(self.app.backend.labs()))
        except Exception as exc:
            self.post_message(Failed("listing the labs", exc))

    @on(LabsLoaded)
    def loaded(self, message: LabsLoaded) -> None:
        self.rows = message.labs
        table = self.query_one("#labs", DataTable)
        keep = table.cursor_row
        table.clear()
        now = self.app.clock()
        for lab in self.rows:
            probe = Text(lab.last_probe or "—", style="green" if lab.last_probe_ok else
                         "bold red" if lab.last_probe_ok is False else "")
            state = Text(lab.state, style="green" if lab.state == "up" else "yellow")
            table.add_row(lab.name, state, lab.environment, lab.point or "clean clone",
                          lease_left(lab.lease_until, now), probe,
                          f"{lab.running}/{lab.domains}" if lab.running is not None else "?",
                          Text(str(lab.shares), style="bold") if lab.shares else "—", key=lab.name)
        if self.rows:
            table.move_cursor(row=min(keep, len(self.rows) - 1))
        if self.app.lab:                        # keep the chosen lab's facts fresh
            fresh = next((r for r in self.rows if r.name == self.app.lab.name), None)
            self.app.select_lab(fresh or self.app.lab)
        self.say(f"{len(self.rows)} labs" if self.rows else "no labs: n makes one")

    @on(Failed)
    def failed(self, message: Failed) -> None:
        self.show_error(message.what, message.error)

    def selected(self) -> LabRow | None:
        table = self.query_one("#labs", DataTable)
        if not self.rows or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    # actions ----------------------------------------------------------------
    def action_reload(self) -> None:
        self.reload()

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        lab = self.selected()
        if lab:
            self.app.select_lab(lab)
            self.app.switch_mode("timeline")

    def action_new(self) -> None:
        def create(answer) -> None:
            if answer:
                spec, name, snapshot = answer
                backend = self.app.backend
                self.app.push_screen(
                    ProgressScreen(f"lab up {spec}", lambda r: backend.lab_up(spec, name, snapshot, r)),
                    self._after)
        self.app.push_screen(NewLabScreen(self.app.spec), create)

    def action_down(self) -> None:
        lab = self.selected()
        if lab is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                backend = self.app.backend
                if self.app.lab and self.app.lab.name == lab.name:
                    self.app.select_lab(None)
                self.app.push_screen(ProgressScreen(f"lab down {lab.name}", lambda r: backend.lab_down(lab.name, r)),
                                     self._after)
        self.app.push_screen(ConfirmScreen(f"Tear down lab {lab.name}? Its VMs, networks and overlays are removed."),
                             confirmed)

    def action_shares(self) -> None:
        lab = self.selected()
        if lab is not None:
            self.app.push_screen(SharesScreen(lab.name), self._after)

    def action_extend(self) -> None:
        lab = self.selected()
        if lab is None:
            return

        def extend(text: str | None) -> None:
            if text:
                try:
                    hours = lease_hours(text)
                except Exception as exc:
                    self.show_error("extending the lease", exc)
                    return
                self.extend(lab.name, hours)
        self.app.push_screen(AskScreen(f"Extend the lease of {lab.name} by (e.g. 8h, 2d)", "8h"), extend)

    @work(thread=True, group="lease")
    def extend(self, name: str, hours: float) -> None:
        try:
            self.post_message(Loaded("lease", (name, self.app.backend.extend_lease(name, hours))))
        except Exception as exc:
            self.post_message(Failed("extending the lease", exc))

    @on(Loaded)
    def lease_extended(self, message: Loaded) -> None:
        name, until = message.value
        self.notify(f"lab {name} is kept until {until}")
        self.reload()

    def _after(self, result) -> None:
        self.reload()
