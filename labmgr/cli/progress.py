"""Render the core's progress steps as rich progress bars on stderr."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn)

from ..progress import fault_point

console = Console(stderr=True, highlight=False)


class _RichStep:
    def __init__(self, progress: Progress, task: int) -> None:
        self.progress, self.task = progress, task

    def advance(self, amount: float = 1) -> None:
        self.progress.advance(self.task, amount)

    def update(self, *, completed: float | None = None, total: float | None = None,
               label: str | None = None) -> None:
        changes = {}
        if completed is not None:
            changes["completed"] = completed
        if total is not None:
            changes["total"] = total
        if label is not None:
            changes["description"] = label
        self.progress.update(self.task, **changes)


class RichReporter:
    """One progress bar per step; each finished step stays on screen with its time."""

    @contextmanager
    def step(self, label: str, total: float | None = None) -> Iterator[_RichStep]:
        fault_point(label)
        started = time.monotonic()
        # without a terminal (cron, CI, a pipe) only the finished steps are printed
        with Progress(SpinnerColumn(), TextColumn("{task.description:<40}"), BarColumn(),
                      TaskProgressColumn(), TimeElapsedColumn(), console=console,
                      transient=True, disable=not console.is_terminal) as progress:
            task = progress.add_task(label, total=total)
            yield _RichStep(progress, task)
        console.print(f"  [green]✓[/] {label:<40} {time.monotonic() - started:6.1f} s")

    def note(self, message: str) -> None:
        console.print(f"  [yellow]![/] {message}")
