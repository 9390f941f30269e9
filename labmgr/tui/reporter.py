"""A progress reporter for the core that posts Textual messages, and can cancel.

The core calls it from worker threads; ``post_message`` is thread-safe. Cancel
is cooperative: the next step, advance or server stage raises ``Cancelled``,
and the core's own error handling (revert to the previous point, remove a
half-made lab) runs as for any other error; the core reports that handling
through ``shielded()``, which a Cancel does not interrupt.
"""

from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager
from typing import Iterator

from textual.message_pump import MessagePump

from ..errors import LabmgrError
from .messages import Note, StageChanged, StepChanged, StepEnded, StepStarted


class Cancelled(LabmgrError):
    """The person asked to stop."""


class _Step:
    def __init__(self, reporter: "TuiReporter", key: int, total: float | None) -> None:
        self.reporter, self.key, self.total, self.completed = reporter, key, total, 0.0

    def advance(self, amount: float = 1) -> None:
        self.reporter.check()
        self.completed += amount
        self.reporter.target.post_message(StepChanged(self.key, self.completed, self.total, None))

    def update(self, *, completed: float | None = None, total: float | None = None,
               label: str | None = None) -> None:
        self.reporter.check()
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        self.reporter.target.post_message(StepChanged(self.key, self.completed, self.total, label))


class TuiReporter:
    def __init__(self, target: MessagePump) -> None:
        self.target = target
        self._cancel = threading.Event()
        self._keys = itertools.count()
        self._shielded = False

    def shielded(self) -> "TuiReporter":
        """The same progress, for work a Cancel must not interrupt (a revert): it never raises."""
        view = TuiReporter(self.target)
        view._cancel, view._keys, view._shielded = self._cancel, self._keys, True
        return view

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set() and not self._shielded:
            raise Cancelled("cancelled by the user")

    @contextmanager
    def step(self, label: str, total: float | None = None) -> Iterator[_Step]:
        self.check()
        key = next(self._keys)
        self.target.post_message(StepStarted(key, label, total))
        try:
            yield _Step(self, key, total)
        except BaseException:
            self.target.post_message(StepEnded(key, ok=False))
            raise
        self.target.post_message(StepEnded(key, ok=True))

    def note(self, message: str) -> None:
        self.target.post_message(Note(message))

    def stage(self, subject: str, name: str, state: str) -> None:
        if state == "start":
            self.check()
        self.target.post_message(StageChanged(subject, name, state))
