"""Servers: state, production hostname and IPs as the guest agent reports them; the serial console, ssh;
the console evidence of the newest probe run (its screenshot's path, the serial console's last lines)."""

from __future__ import annotations

import subprocess

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from ...lab.servers import ServerInfo
from ..messages import Failed, Loaded
from .base import MainScreen

CONSOLE_LINES = 8
COLUMNS = ("server", "domain", "state", "hostname", "guest says", "addresses (guest agent)")


class ServersScreen(MainScreen):
    NAME = "Servers"
    BINDINGS = [
        Binding("c", "console", "Console"),
        Binding("s", "ssh", "SSH"),
        Binding("r", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.servers: list[ServerInfo] = []

    def compose_body(self) -> ComposeResult:
        table = DataTable(id="servers", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Static(id="access", classes="detail")

    def reload(self) -> None:
        if not self.have_lab():
            return
        self.say("asking the guest agents…")
        self.load()

    def action_reload(self) -> None:
        self.reload()

    @work(thread=True, exclusive=True, group="servers")
    def load(self) -> None:
        try:
            self.post_message(Loaded("servers", self.app.backend.servers(self.lab.name)))
        except Exception as exc:
            self.post_message(Failed("asking the servers", exc))

    @on(Loaded)
    def loaded(self, message: Loaded) -> None:
        if message.what in ("console", "ssh"):
            self._console(message.value)
            return
        self.servers = message.value
        table = self.query_one("#servers", DataTable)
        table.clear()
        for s in self.servers:
            guest = s.guest_hostname or "—"
            same = s.guest_hostname == s.hostname
            table.add_row(s.server, s.domain, Text(s.state, style="green" if s.state == "running" else "yellow"),
                          s.hostname, Text(guest, style="" if same or not s.guest_hostname else "bold red"),
                          Text(", ".join(s.guest_ips) or (s.agent_error and "agent silent") or "—"), key=s.server)
        self.say(f"{len(self.servers)} servers of lab {self.lab.name}")
        self._show_access()

    @on(Failed)
    def failed(self, message: Failed) -> None:
        self.show_error(message.what, message.error)

    @on(DataTable.RowHighlighted)
    def _show_access(self) -> None:
        server = self.selected()
        if server is None:
            return
        lines = [f"{server.server}: production {server.hostname} {', '.join(server.ips)}", "ways in:"]
        lines += [f"  {path}" for path in server.access]
        if server.agent_error:
            lines.append(f"guest agent: {server.agent_error}")
        if server.screenshot:
            lines.append(f"screen at the last probe run: {server.screenshot}")
        if server.console_tail:
            lines.append("serial console's last lines (last probe run):")
            lines += [f"  {line}" for line in server.console_tail.splitlines()[-CONSOLE_LINES:]]
        self.query_one("#access", Static).update(Text("\n".join(lines)))

    def selected(self) -> ServerInfo | None:
        table = self.query_one("#servers", DataTable)
        if not self.servers or table.cursor_row >= len(self.servers):
            return None
        return self.servers[table.cursor_row]

    def action_console(self) -> None:
        self._hand_over("console")

    def action_ssh(self) -> None:
        self._hand_over("ssh")

    def _hand_over(self, how: str) -> None:
        server = self.selected()
        if server:
            self.login_command(how, server.server)

    @work(thread=True, exclusive=True, group="console")
    def login_command(self, how: str, server: str) -> None:
        """Ask the core for the command (it reads the lab record) off the UI thread."""
        ask = self.app.backend.console_command if how == "console" else self.app.backend.ssh_command
        try:
            self.post_message(Loaded(how, ask(self.lab.name, server)))
        except Exception as exc:
            self.post_message(Failed(f"opening the {how}", exc))

    def _console(self, command: list[str]) -> None:
        """Hand the terminal to the console or ssh, as `virsh console` does; leaving it comes back here."""
        try:
            with self.app.suspend():
                print(f"{' '.join(command)}   (Ctrl+] or exit returns to labmgr)", flush=True)
                subprocess.run(command)
        except Exception as exc:          # no terminal to hand over (a test, a web driver)
            self.show_error("opening the console", exc)
            return
        self.app.refresh()
