"""The typed messages workers post to the screens (workers never touch widgets)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from textual.message import Message

from .backend import Grid, LabRow, ProbeRun, TimelineShape


class Loaded(Message):
    """A worker's answer: ``what`` names the question, ``value`` is the core's answer."""

    def __init__(self, what: str, value: Any) -> None:
        super().__init__()
        self.what, self.value = what, value


class Failed(Message):
    """A worker's core call raised; ``error`` is shown in full."""

    def __init__(self, what: str, error: BaseException) -> None:
        super().__init__()
        self.what, self.error = what, error


class LabsLoaded(Message):
    def __init__(self, labs: list[LabRow]) -> None:
        super().__init__()
        self.labs = labs


class LabLoaded(Message):
    def __init__(self, lab: LabRow) -> None:
        super().__init__()
        self.lab = lab


class ShapeLoaded(Message):
    def __init__(self, shape: TimelineShape) -> None:
        super().__init__()
        self.shape = shape


class PageLoaded(Message):
    def __init__(self, page: int, grid: Grid) -> None:
        super().__init__()
        self.page, self.grid = page, grid


class CompleteHoursLoaded(Message):
    def __init__(self, hours: list[datetime]) -> None:
        super().__init__()
        self.hours = hours


class VerdictsLoaded(Message):
    def __init__(self, verdicts: dict[datetime, bool]) -> None:
        super().__init__()
        self.verdicts = verdicts


class DriftLoaded(Message):
    def __init__(self, hours: set[datetime]) -> None:
        super().__init__()
        self.hours = hours


class FlaggedLoaded(Message):
    def __init__(self, hours: set[datetime]) -> None:
        super().__init__()
        self.hours = hours


class ProbesLoaded(Message):
    def __init__(self, run: ProbeRun | None) -> None:
        super().__init__()
        self.run = run


# progress of one long operation (lab up, restore, lab down) ------------------
class StepStarted(Message):
    def __init__(self, key: int, label: str, total: float | None) -> None:
        super().__init__()
        self.key, self.label, self.total = key, label, total


class StepChanged(Message):
    def __init__(self, key: int, completed: float, total: float | None, label: str | None) -> None:
        super().__init__()
        self.key, self.completed, self.total, self.label = key, completed, total, label


class StepEnded(Message):
    def __init__(self, key: int, ok: bool) -> None:
        super().__init__()
        self.key, self.ok = key, ok


class StageChanged(Message):
    """Server ``subject`` started ('start'), finished ('done') or failed ('failed') stage ``stage``."""

    def __init__(self, subject: str, stage: str, state: str) -> None:
        super().__init__()
        self.subject, self.stage, self.state = subject, stage, state


class Note(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class OperationDone(Message):
    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result


class OperationFailed(Message):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error
