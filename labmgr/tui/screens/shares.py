"""A lab's open shares (``labmgr share``) and their people: end a share, or withdraw one person's link."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from ..messages import Failed, Loaded
from .dialogs import Dialog

COLUMNS = ("share", "application", "link base", "until", "person", "link")


class SharesScreen(Dialog):
    BINDINGS = [
        Binding("x", "end", "End share"),
        Binding("w", "withdraw", "Withdraw person's link"),
        Binding("r", "reload", "Refresh"),
        Binding("escape,q", "cancel", "Close"),
    ]

    def __init__(self, lab: str) -> None:
        super().__init__()
        self.lab = lab
        self.rows: list[tuple[str, str]] = []         # (share id, person) per table row

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(Text(f"Shares of lab {self.lab}: x ends the share, w withdraws one person's link"),
                        classes="question")
            table = DataTable(id="shares", cursor_type="row", zebra_stripes=True)
            table.add_columns(*COLUMNS)
            yield table
            yield Static(id="problem", classes="status")

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="shares")
    def load(self) -> None:
        try:
            self.post_message(Loaded("shares", self.app.backend.shares(self.lab)))
        except Exception as exc:
            self.post_message(Failed("listing the shares", exc))

    @work(thread=True, group="share-change")
    def change(self, what: str, share: str, person: str) -> None:
        try:
            if what == "end":
                self.app.backend.end_share(self.lab, share)
            else:
                self.app.backend.withdraw_link(self.lab, share, person)
            self.post_message(Loaded("changed", (what, share, person)))
        except Exception as exc:
            self.post_message(Failed("changing the share", exc))

    @on(Loaded)
    def loaded(self, message: Loaded) -> None:
        if message.what == "changed":
            what, share, person = message.value
            self.notify(f"share {share} ended" if what == "end" else f"{person}'s link to share {share} withdrawn")
            self.load()
            return
        table = self.query_one("#shares", DataTable)
        table.clear()
        self.rows = []
        for share in message.value:
            until = Text("expired", style="yellow") if share.expired(self.app.clock()) else share.expires_at
            for person in share.people:
                table.add_row(share.id, f"{share.hostname}:{share.port}", share.url, until, person.name,
                              Text("withdrawn", style="red") if person.revoked else Text("valid", style="green"))
                self.rows.append((share.id, person.name))
        self.query_one("#problem", Static).update(
            Text(f"{len(message.value)} open shares" if message.value else "no open shares"))

    @on(Failed)
    def failed(self, message: Failed) -> None:
        self.query_one("#problem", Static).update(Text(f"{message.what}: {message.error}", style="red"))

    def _selected(self) -> tuple[str, str] | None:
        table = self.query_one("#shares", DataTable)
        return self.rows[table.cursor_row] if self.rows and table.cursor_row < len(self.rows) else None

    def action_end(self) -> None:
        if chosen := self._selected():
            self.change("end", chosen[0], "")

    def action_withdraw(self) -> None:
        if chosen := self._selected():
            self.change("withdraw", *chosen)
