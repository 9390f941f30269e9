"""An hour's data profile next to the nearest earlier profiled hour's: tables and files, changes marked."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from ..backend import HourProfile
from .dialogs import Dialog


class ProfileScreen(Dialog):
    BINDINGS = [Binding("escape,enter,q,d", "cancel", "Close")]

    def __init__(self, profile: HourProfile) -> None:
        super().__init__()
        self.profile = profile

    def compose(self) -> ComposeResult:
        earlier = self.profile.previous or "no earlier profiled hour"
        changed = sum(1 for *_, moved in self.profile.rows if moved)
        with Vertical(classes="dialog wide"):
            yield Label(Text(f"Data profile at {self.profile.point} against {earlier}: "
                             f"{changed} of {len(self.profile.rows)} changed"), classes="question")
            yield DataTable(id="profile", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#profile", DataTable)
        table.add_columns("", "what", self.profile.previous or "earlier", self.profile.point)
        for what, before, after, moved in self.profile.rows:
            style = "bold yellow" if moved else ""
            table.add_row(Text("≠" if moved else " ", style=style), Text(what, style=style), before,
                          Text(after, style=style))
        table.focus()
