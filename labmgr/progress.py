"""How the core reports progress without knowing who is watching.

The core calls ``reporter.step(label, total)`` and advances the returned step;
the CLI renders steps as rich progress bars, the TUI posts messages, tests
pass ``SILENT``. Work done for several servers at once also reports each
server's stages with :func:`stage`; only reporters that show them (the TUI)
implement ``stage``, so every other reporter keeps working unchanged.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Protocol


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
