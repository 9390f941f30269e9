"""What every main screen has: the header, a line saying which lab it is about, a status line, the footer."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from ..format import error_text


class MainScreen(Screen):
    NAME = ""      # shown as the header's sub-title

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="context", classes="context")
        yield from self.compose_body()
        yield Static(id="status", classes="status")
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    @property
    def lab(self):
        return self.app.lab

    _seen: object = ...      # what the screen last loaded for: (lab, point) or the spec; ... = nothing yet

    def on_screen_resume(self) -> None:
        """Shown again (another screen, or a dialog closed): ask the core again only if the lab moved."""
        self.sub_title = self.NAME
        self.query_one("#context", Static).update(Text(self.app.context_line()))
        lab = self.app.lab
        seen = (lab.name, lab.point, lab.state) if lab else self.app.spec
        if seen != self._seen:
            self._seen = seen
            self.reload()

    def reload(self) -> None:
        """Ask the core again (in workers)."""

    def have_lab(self) -> bool:
        """True when a lab is chosen; else say how to choose one."""
        if self.lab is None:
            self.say("no lab chosen: choose one on Labs (1)")
            return False
        return True

    def say(self, text: str) -> None:
        status = self.query_one("#status", Static)
        status.remove_class("error")
        status.update(Text(text))

    def show_error(self, what: str, error: BaseException) -> None:
        status = self.query_one("#status", Static)
        status.add_class("error")
        status.update(Text(f"{what}: {error_text(error)}"))
