"""Sign-off: what a person checked and found, kept as evidence; export the report."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Label

from ..messages import Failed, Loaded
from .base import MainScreen
from .dialogs import ExportScreen

COLUMNS = ("at", "point in time", "user", "what was checked")


class SignoffScreen(MainScreen):
    NAME = "Sign-off"
    AUTO_FOCUS = "#signoffs"      # the list: number keys switch screens; s opens the form
    BINDINGS = [
        Binding("s", "write", "Sign off…"),
        Binding("ctrl+s", "sign", "Sign off", show=False),
        Binding("x", "export", "Export report"),
        Binding("escape", "leave_form", "Back to the list", show=False),
    ]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="signform"):
            yield Label("user")
            yield Input(self.app.user, id="user")
            yield Label("checked")
            yield Input(placeholder="Q3 invoices present", id="note")
            yield Button("Sign off", variant="primary", id="sign")
        table = DataTable(id="signoffs", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table

    def on_mount(self) -> None:
        # live: people sign off from their share links while the screen is open
        self.set_interval(self.app.refresh_seconds, self.refresh_live)

    def refresh_live(self) -> None:
        if self.lab is not None and self.app.screen is self:
            self.load()

    def reload(self) -> None:
        if not self.have_lab():
            return
        self.query_one("#signoffs", DataTable).focus()
        self.load()

    def action_write(self) -> None:
        self.query_one("#note", Input).focus()

    def action_leave_form(self) -> None:
        self.query_one("#signoffs", DataTable).focus()

    @work(thread=True, exclusive=True, group="signoffs")
    def load(self) -> None:
        try:
            self.post_message(Loaded("signoffs", self.app.backend.signoffs(self.lab.name)))
        except Exception as exc:
            self.post_message(Failed("reading the sign-offs", exc))

    @work(thread=True, group="sign")
    def sign(self, user: str, note: str) -> None:
        try:
            self.post_message(Loaded("signed", self.app.backend.sign_off(self.lab.name, user, note)))
        except Exception as exc:
            self.post_message(Failed("signing off", exc))

    @work(thread=True, group="export")
    def export(self, fmt: str, path) -> None:
        try:
            self.post_message(Loaded("exported", self.app.backend.export_report(self.lab.name, fmt, path)))
        except Exception as exc:
            self.post_message(Failed("exporting the report", exc))

    @on(Loaded)
    def loaded(self, message: Loaded) -> None:
        if message.what == "signoffs":
            table = self.query_one("#signoffs", DataTable)
            table.clear()
            keep = table.cursor_row
            for s in message.value:
                table.add_row(s.at, s.point or "clean clone", s.user, _checked(s))
            if message.value:
                table.move_cursor(row=min(keep, len(message.value) - 1))
            self.say(f"{len(message.value)} sign-offs on lab {self.lab.name}; s signs off, x exports the report")
        elif message.what == "signed":
            self.query_one("#note", Input).value = ""
            self.action_leave_form()
            self.notify(f"signed off by {message.value.user}: {message.value.note}")
            self.load()
        elif message.what == "exported":
            self.say(f"report written to {message.value}")
            self.notify(f"report written to {message.value}")

    @on(Failed)
    def failed(self, message: Failed) -> None:
        self.show_error(message.what, message.error)

    @on(Button.Pressed, "#sign")
    @on(Input.Submitted, "#note")
    def action_sign(self) -> None:
        if not self.have_lab():
            return
        self.sign(self.query_one("#user", Input).value, self.query_one("#note", Input).value)

    def action_export(self) -> None:
        if not self.have_lab():
            return

        def export(answer) -> None:
            if answer:
                self.export(*answer)
        self.app.push_screen(ExportScreen(self.lab.name), export)


def _checked(signoff) -> Text:
    """The note, after the verdict given on a share link's sign-off page."""
    if signoff.verdict == "right":
        return Text.assemble(("✓ data right ", "green"), signoff.note)
    if signoff.verdict == "wrong":
        return Text.assemble(("✗ something is wrong ", "bold red"), signoff.note)
    return Text(signoff.note)
