"""Probes: the results at the lab's current point; run all or one again; a probe's whole output."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from ...probes.report import exit_code
from ..backend import ProbeRun
from ..format import seconds
from ..messages import Failed, ProbesLoaded
from .base import MainScreen
from .dialogs import TextScreen

COLUMNS = ("result", "probe", "server", "kind", "duration", "detail")


def mark(result) -> Text:
    if result.passed:
        return Text("pass", style="bold green")
    return Text("FAIL", style="bold red") if result.severity == "critical" else Text("warn", style="bold yellow")


class ProbesScreen(MainScreen):
    NAME = "Probes"
    BINDINGS = [
        Binding("enter", "output", "Output"),
        Binding("r", "run_all", "Run all"),
        Binding("o", "run_one", "Run this one"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.run: ProbeRun | None = None

    def compose_body(self) -> ComposeResult:
        table = DataTable(id="probes", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table

    def reload(self) -> None:
        if not self.have_lab():
            return
        self.load()

    @work(thread=True, exclusive=True, group="probes")
    def load(self) -> None:
        try:
            self.post_message(ProbesLoaded(self.app.backend.probe_run(self.lab.name)))
        except Exception as exc:
            self.post_message(Failed("reading the probe results", exc))

    @work(thread=True, exclusive=True, group="probes")
    def run_probes(self, only: list[str] | None) -> None:
        try:
            self.post_message(ProbesLoaded(self.app.backend.run_probes(self.lab.name, self.app.probes, only)))
        except Exception as exc:
            self.post_message(Failed("running the probes", exc))

    @on(ProbesLoaded)
    def loaded(self, message: ProbesLoaded) -> None:
        run = message.run
        if run is not None and self.run is not None and run.point == self.run.point and \
                len(run.results) < len(self.run.results):
            # one probe run again: keep the others' results of this point
            fresh = {(r.name, r.server): r for r in run.results}
            run = ProbeRun(run.point, [fresh.get((r.name, r.server), r) for r in self.run.results])
        self.run = run
        table = self.query_one("#probes", DataTable)
        keep = table.cursor_row
        table.clear()
        if run is None:
            self.say("no probe results at this point yet: r runs them" +
                     ("" if self.app.probes else " (start with --probes FILE)"))
            return
        for r in run.results:
            table.add_row(mark(r), r.name, r.server, r.kind, seconds(r.seconds), Text(r.detail),
                          key=f"{r.name}@{r.server}")     # an isolation probe has one result per server
        if run.results:
            table.move_cursor(row=min(keep, len(run.results) - 1))
        passed = sum(1 for r in run.results if r.passed)
        verdict = "PASS" if exit_code(run.results) == 0 else "FAIL"
        self.say(f"{verdict}: {passed} of {len(run.results)} probes passed at {run.point or 'the clean clone'}")

    @on(Failed)
    def failed(self, message: Failed) -> None:
        self.show_error(message.what, message.error)

    def selected(self):
        table = self.query_one("#probes", DataTable)
        if self.run is None or not self.run.results or table.cursor_row >= len(self.run.results):
            return None
        return self.run.results[table.cursor_row]

    def _can_run(self) -> bool:
        if not self.have_lab():
            return False
        if self.app.probes is None:
            self.say("no probe file: start the TUI with --probes FILE (as 'labmgr probe' takes it)")
            return False
        return True

    def action_run_all(self) -> None:
        if self._can_run():
            self.say("running every probe…")
            self.run_probes(None)

    def action_run_one(self) -> None:
        result = self.selected()
        if result and self._can_run():
            self.say(f"running {result.name}…")
            self.run_probes([result.name])

    @on(DataTable.RowSelected)
    def action_output(self) -> None:
        result = self.selected()
        if result:
            text = f"{result.detail}\n\n{result.output_tail or '(no output)'}"
            self.app.push_screen(TextScreen(f"{result.name} on {result.server} ({result.kind}, "
                                            f"{'passed' if result.passed else 'failed'})", text))
