"""The labmgr TUI: one app, a screen per job (modes), the core behind a Backend."""

from __future__ import annotations

import getpass
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from .backend import Backend, LabRow
from .screens.help import HelpScreen
from .screens.labs import LabsScreen
from .screens.probes import ProbesScreen
from .screens.servers import ServersScreen
from .screens.signoff import SignoffScreen
from .screens.timeline import TimelineScreen

DARK, LIGHT = "textual-dark", "textual-light"
SCREENS = (("labs", "Labs"), ("timeline", "Timeline"), ("probes", "Probes"), ("servers", "Servers"),
           ("signoff", "Sign-off"))


def _default_user() -> str:
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or getpass.getuser()


class LabmgrApp(App):
    TITLE = "labmgr"
    CSS_PATH = "labmgr.tcss"
    MODES = {"labs": LabsScreen, "timeline": TimelineScreen, "probes": ProbesScreen,
             "servers": ServersScreen, "signoff": SignoffScreen}
    BINDINGS = [
        Binding("1", "switch_mode('labs')", "Labs"),
        Binding("2", "switch_mode('timeline')", "Timeline"),
        Binding("3", "switch_mode('probes')", "Probes"),
        Binding("4", "switch_mode('servers')", "Servers"),
        Binding("5", "switch_mode('signoff')", "Sign-off"),
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, backend: Backend, *, spec: Path | None = None, lab: LabRow | None = None,
                 probes: Path | None = None, clock: Callable[[], datetime] | None = None,
                 user: str | None = None, theme: str = DARK, refresh_seconds: float = 15) -> None:
        super().__init__()
        self.backend = backend
        self.spec = Path(spec) if spec else None
        self.lab = lab
        self.probes = Path(probes) if probes else None
        self.clock = clock or (lambda: datetime.now(timezone.utc))   # injected: snapshots need fixed times
        self.user = user if user is not None else _default_user()
        self.refresh_seconds = refresh_seconds
        self.theme = theme

    def on_mount(self) -> None:
        self.switch_mode("timeline" if self.lab or self.spec else "labs")

    # what the screens share ---------------------------------------------------
    def timeline_spec(self) -> Path | None:
        """The environment whose dumps the timeline shows: the lab's, or the one given."""
        if self.lab and self.lab.spec:
            return Path(self.lab.spec)
        return self.spec

    def select_lab(self, row: LabRow | None) -> None:
        self.lab = row

    def context_line(self) -> str:
        if self.lab is None:
            where = f"environment {self.spec}" if self.spec else "no lab chosen (Labs: 1, Enter)"
            return where
        lab = self.lab
        point = lab.point or "clean clone (no point restored)"
        probe = f" · probes {lab.last_probe}" if lab.last_probe else ""
        return f"lab {lab.name} ({lab.state}) · {lab.environment} · at {point}{probe}"

    # actions ----------------------------------------------------------------
    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.theme == DARK else DARK

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, title in SCREENS:
            yield SystemCommand(f"Go to {title}", f"Show the {title} screen",
                                lambda mode=mode: self.switch_mode(mode))
        yield SystemCommand("Toggle dark/light", "Switch between the dark and the light theme",
                            self.action_toggle_theme)
        yield SystemCommand("Help", "Keys of every screen", self.action_help)
