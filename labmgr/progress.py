"""How the core reports progress without knowing who is watching.

The core calls ``reporter.step(label, total)`` and advances the returned step;
the CLI renders steps as rich progress bars, the TUI posts messages, tests
pass ``SILENT``. Work done for several servers at once also reports each
server's stages with :func:`stage`; only reporters that show them (the TUI)
implement ``stage``, so every other reporter keeps working unchanged.
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from typing import Iterator, Protocol

FAULT_KILL_AT = "LABMGR_FAULT_KILL_AT"


class Step(Protocol):
    def advance(self, amount: float = 1) -> None: ...

    def update(self, *, completed: float | None = None, total: float | None = None,
               label: str | None = None) -> None: ...


class Reporter(Protocol):
    def step(self, label: str, total: float | None = None) -> "StepContext": ...

    def note(self, message: str) -> None: ...


class StepContext(Protocol):
    def __enter__(self) -> Step: ...

    def __exit__(self, *exc: object) -> None: ...


class _SilentStep:
    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, *, completed: float | None = None, total: float | None = None,
               label: str | None = None) -> None:
        pass


class SilentReporter:
    @contextmanager
    def step(self, label: str, total: float | None = None) -> Iterator[Step]:
        yield _SilentStep()

    def note(self, message: str) -> None:
        pass


SILENT = SilentReporter()


@contextmanager
def stage(reporter: Reporter, subject: str, name: str) -> Iterator[None]:
    """Tell ``reporter`` that ``subject`` (a server) starts, ends or fails stage ``name``
    ('revert', 'media', 'restore'), if it wants to know."""
    fault_point(f"{subject} {name}")
    report = getattr(reporter, "stage", None)
    if report is None:
        yield
        return
    report(subject, name, "start")
    try:
        yield
    except BaseException:
        report(subject, name, "failed")
        raise
    report(subject, name, "done")


def shielded(reporter: Reporter) -> Reporter:
    """``reporter`` for work that must not be cancelled (putting a lab back at its previous
    point): a reporter that can cancel (the TUI's) gives a view of itself that never raises."""
    shield = getattr(reporter, "shielded", None)
    return shield() if shield is not None else reporter


def fault_point(label: str) -> None:
    """The fault suite's hook: with ``LABMGR_FAULT_KILL_AT=TEXT`` in the environment, the process
    kills itself with SIGKILL when a step or server stage whose label contains TEXT starts, so a
    test can kill labmgr at every stage it reports, deterministically."""
    wanted = os.environ.get(FAULT_KILL_AT)
    if wanted and wanted in label:
        os.kill(os.getpid(), signal.SIGKILL)
