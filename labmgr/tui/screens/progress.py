"""Live progress of one long core operation (lab up, restore, lab down): steps, and each
server's stages (revert, media, restore) with bars and elapsed times; cancel; the error in full."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, ProgressBar, Static

from ..format import error_text, seconds
from ..messages import (Note, OperationDone, OperationFailed, StageChanged, StepChanged, StepEnded,
                        StepStarted)
from ..reporter import TuiReporter

STAGES = ("revert", "media", "restore")
MARKS = {"pending": "·", "start": "▶", "done": "✓", "failed": "✗"}

Operation = Callable[[TuiReporter], Any]


@dataclass
class _Timer:
    started: datetime
    ended: datetime | None = None

    def elapsed(self, now: datetime) -> float:
        return ((self.ended or now) - self.started).total_seconds()


class StepRow(Horizontal):
    def __init__(self, label: str, total: float | None, started: datetime) -> None:
        super().__init__(classes="step")
        self.label, self.total, self.timer, self.state = label, total, _Timer(started), "start"
        # made here, not in compose: the screen updates them before they are mounted
        self.mark, self.text = Label(MARKS["start"], classes="mark"), Label(Text(label), classes="label")
        self.bar = ProgressBar(total=total, show_eta=False, show_percentage=True)
        self.elapsed = Label("", classes="elapsed")

    def compose(self) -> ComposeResult:
        yield from (self.mark, self.text, self.bar, self.elapsed)


class ServerRow(Horizontal):
    def __init__(self, server: str) -> None:
        super().__init__(classes="server")
        self.server = server
        self.stages: dict[str, tuple[str, _Timer | None]] = {s: ("pending", None) for s in STAGES}
        self.bar = ProgressBar(total=len(STAGES), show_eta=False, show_percentage=False)
        self.labels = {stage: Label("", classes=f"stage {stage}") for stage in STAGES}

    def compose(self) -> ComposeResult:
        yield Label(Text(self.server), classes="label")
        yield self.bar
        yield from self.labels.values()


class ProgressScreen(ModalScreen):
    BINDINGS = [Binding("c", "cancel", "Cancel"), Binding("escape", "close", "Close"),
                Binding("enter", "close", "Close", show=False), Binding("question_mark", "app.help", "Help")]

    def __init__(self, title: str, operation: Operation, close_on_success: bool = True) -> None:
        super().__init__()
        self.title_text, self.operation, self.close_on_success = title, operation, close_on_success
        self.reporter = TuiReporter(self)
        self.steps: dict[int, StepRow] = {}
        self.servers: dict[str, ServerRow] = {}
        self.finished = False
        self.result: Any = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="progress"):
            yield Label(Text(self.title_text), classes="question")
            yield Vertical(id="steps")
            with Horizontal(id="server-head", classes="server"):
                yield Label("server", classes="label")
                yield Label("", classes="bar-space")
                for stage in STAGES:
                    yield Label(stage, classes=f"stage {stage}")
            yield Vertical(id="servers")
            yield VerticalScroll(id="notes")
            yield Static(id="outcome", classes="status")
            yield Label("c cancel", id="hint", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#server-head").display = False
        self.set_interval(0.5, self._tick)
        self.run_operation()

    @work(thread=True, exclusive=True, group="operation")
    def run_operation(self) -> None:
        try:
            result = self.operation(self.reporter)
        except BaseException as exc:        # shown in full; the worker itself never fails
            self.post_message(OperationFailed(exc))
        else:
            self.post_message(OperationDone(result))

    # messages from the reporter -----------------------------------------------
    @on(StepStarted)
    def step_started(self, message: StepStarted) -> None:
        row = StepRow(message.label, message.total, self.app.clock())
        self.steps[message.key] = row
        self.query_one("#steps").mount(row)
        self._tick()

    @on(StepChanged)
    def step_changed(self, message: StepChanged) -> None:
        row = self.steps.get(message.key)
        if row is None:
            return
        row.bar.update(total=message.total, progress=message.completed)
        if message.label:
            row.text.update(Text(message.label))

    @on(StepEnded)
    def step_ended(self, message: StepEnded) -> None:
        row = self.steps.get(message.key)
        if row is None:
            return
        row.timer.ended, row.state = self.app.clock(), "done" if message.ok else "failed"
        row.mark.update(MARKS[row.state])
        if message.ok and row.total:
            row.bar.update(progress=row.total)
        self._tick()

    @on(StageChanged)
    def stage_changed(self, message: StageChanged) -> None:
        row = self.servers.get(message.subject)
        if row is None:
            row = self.servers[message.subject] = ServerRow(message.subject)
            self.query_one("#server-head").display = True
            self.query_one("#servers").mount(row)
        _, timer = row.stages[message.stage]
        now = self.app.clock()
        if message.state == "start":
            timer = timer or _Timer(now)          # a stage reported in parts keeps its first start
            timer.ended = None
        elif timer:
            timer.ended = now
        row.stages[message.stage] = (message.state, timer)
        self._tick()

    @on(Note)
    def noted(self, message: Note) -> None:
        self.query_one("#notes").mount(Label(Text(f"! {message.text}"), classes="note"))

    @on(OperationDone)
    def done(self, message: OperationDone) -> None:
        self.finished, self.result = True, message.result
        self._tick()
        if self.close_on_success:
            self.dismiss(message.result)
            return
        self._outcome("done", error=False)

    @on(OperationFailed)
    def failed(self, message: OperationFailed) -> None:
        self.finished = True
        self._tick()
        self._outcome(error_text(message.error), error=True)
        self.app.bell()

    def _outcome(self, text: str, error: bool) -> None:
        outcome = self.query_one("#outcome", Static)
        outcome.set_class(error, "error")
        outcome.update(Text(text))
        self.query_one("#hint", Label).update("Esc close")

    # time ---------------------------------------------------------------------
    def _tick(self) -> None:
        now = self.app.clock()
        for row in self.steps.values():
            row.elapsed.update(seconds(row.timer.elapsed(now)))
        for row in self.servers.values():
            done = 0
            for stage in STAGES:
                state, timer = row.stages[stage]
                done += state == "done"
                label = row.labels[stage]
                label.update(MARKS[state] + (f" {seconds(timer.elapsed(now))}" if timer else ""))
                label.set_class(state == "failed", "failed")
            row.bar.update(progress=done)

    # keys -----------------------------------------------------------------------
    def action_cancel(self) -> None:
        if self.finished or self.reporter.cancelled:
            return
        self.reporter.cancel()
        self.query_one("#hint", Label).update("cancelling: the core stops at its next step and puts things back")

    def action_close(self) -> None:
        if self.finished:
            self.dismiss(self.result)
