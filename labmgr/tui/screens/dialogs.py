"""Small modal dialogs: confirm, ask for one value, show a long text, create a lab, export a report."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from ..format import error_text
from ..messages import Failed, Loaded


class Dialog(ModalScreen):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(Dialog):
    """Yes or no; Enter or y says yes."""

    BINDINGS = [Binding("y", "yes", "Yes"), Binding("n,escape", "cancel", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question), classes="question")
            with Horizontal(classes="buttons"):
                yield Button("Yes", variant="error", id="yes")
                yield Button("No", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class AskScreen(Dialog):
    """One line of text; Enter gives it, Escape gives None."""

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question, self.value, self.placeholder = question, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question), classes="question")
            yield Input(self.value, placeholder=self.placeholder, id="answer")
            yield Static(id="problem", classes="status error")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)


class TextScreen(Dialog):
    """A long text in full (a probe's output, an error), scrollable."""

    BINDINGS = [Binding("escape,enter,q", "cancel", "Close")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text, self.text = title, text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(Text(self.title_text), classes="question")
            with VerticalScroll(id="text"):
                yield Static(Text(self.text), id="body")


class NewLabScreen(Dialog):
    """Environment spec, snapshot and name of a new lab; gives (spec, name, snapshot)."""

    def __init__(self, spec: Path | None) -> None:
        super().__init__()
        self.spec = spec

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("New lab", classes="question")
            yield Label("Environment spec")
            yield Input(str(self.spec or ""), placeholder="shop.yaml", id="spec")
            yield Label("Snapshot")
            yield Select([], prompt="newest", id="snapshot")
            yield Label("Lab name (empty: ENV-N)")
            yield Input(placeholder="drill", id="name")
            yield Static(id="problem", classes="status error")
            with Horizontal(classes="buttons"):
                yield Button("Create", variant="primary", id="create")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        if self.spec:
            self.load_snapshots(Path(self.spec))

    @on(Input.Submitted, "#spec")
    def spec_given(self, event: Input.Submitted) -> None:
        self.load_snapshots(Path(event.value))

    @work(thread=True, exclusive=True, group="snapshots")
    def load_snapshots(self, spec: Path) -> None:
        try:
            self.post_message(Loaded("snapshots", self.app.backend.snapshots(spec)))
        except Exception as exc:
            self.post_message(Failed("snapshots", exc))

    @on(Loaded)
    def snapshots_loaded(self, message: Loaded) -> None:
        ids = message.value
        self.query_one("#snapshot", Select).set_options([(i, i) for i in ids])
        self._problem("" if ids else "this environment has no snapshot yet ('labmgr snapshot capture')")

    @on(Failed)
    def snapshots_failed(self, message: Failed) -> None:
        self._problem(error_text(message.error))

    def _problem(self, text: str) -> None:
        self.query_one("#problem", Static).update(Text(text))

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "create":
            self.dismiss(None)
            return
        spec = self.query_one("#spec", Input).value.strip()
        if not spec:
            self._problem("give the environment spec")
            return
        snapshot = self.query_one("#snapshot", Select).value
        self.dismiss((Path(spec), self.query_one("#name", Input).value.strip() or None,
                      snapshot if isinstance(snapshot, str) else None))


class ExportScreen(Dialog):
    """Format and file of the report; gives (fmt, path)."""

    def __init__(self, lab: str) -> None:
        super().__init__()
        self.lab = lab

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(f"Export the report of lab {self.lab}"), classes="question")
            yield Select([("HTML", "html"), ("Markdown", "md")], value="html", allow_blank=False, id="format")
            yield Input(f"{self.lab}-report.html", id="path")
            with Horizontal(classes="buttons"):
                yield Button("Export", variant="primary", id="export")
                yield Button("Cancel", id="cancel")

    @on(Select.Changed, "#format")
    def format_changed(self, event: Select.Changed) -> None:
        path = self.query_one("#path", Input)
        stem = path.value.rsplit(".", 1)[0] if "." in path.value else path.value
        path.value = f"{stem}.{event.value}"

    @on(Input.Submitted, "#path")
    def path_given(self) -> None:
        self._done()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "export":
            self._done()
        else:
            self.dismiss(None)

    def _done(self) -> None:
        self.dismiss((str(self.query_one("#format", Select).value), Path(self.query_one("#path", Input).value)))
