"""Recovery objectives (``objectives: {rto: 30m, rpo: 1h}`` in a spec or a drill plan) and how a drill meets them.

RTO measured: the drill's stages added up (capture, clone, boot, inject, restore, probes).
RPO measured: the drill's start minus the oldest dump of the newest point the drill restored
whose probes passed (how much data a disaster at that moment would lose, proven). docs/drills.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import field_validator

from .strict import Strict

NAMES = ("rto", "rpo")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def parse_duration(text: object) -> int:
    """'30m' -> 1800, '1h30m' -> 5400, '2d' -> 172800; anything else (a bare number, '1.5h', '0m') is refused."""
    match = _DURATION.match(text.strip().lower()) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 30m, 1h, 1h30m, 90s or 2d")
    seconds = sum(int(part) * unit for part, (_, unit) in zip(match.groups(), _UNITS) if part)
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds


def format_duration(seconds: float) -> str:
    """1d 2h 5m, 4m 12s, 9 s: the largest units, zero parts left out."""
    whole = int(round(abs(seconds)))
    if whole < 60:
        return f"{whole} s"
    parts = []
    for name, unit in _UNITS:
        if whole >= unit:
            parts.append(f"{whole // unit}{name}")
            whole %= unit
    return " ".join(parts[:2])


class Objectives(Strict):
    """Recovery objectives: the longest a recovery may take and the most data it may lose."""

    rto: str | None = None
    rpo: str | None = None

    @field_validator("rto", "rpo", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if value is not None:
            parse_duration(value)
        return value

    def seconds(self) -> dict[str, int]:
        """The objectives declared, in seconds: {'rto': 1800, 'rpo': 3600}."""
        return {name: parse_duration(getattr(self, name)) for name in NAMES if getattr(self, name)}


def merged(spec: Objectives | None, plan: Objectives | None) -> dict[str, int]:
    """A plan's objectives override the spec's, one by one."""
    out = spec.seconds() if spec else {}
    out.update(plan.seconds() if plan else {})
    return out


@dataclass(frozen=True)
class Judged:
    """One objective against what a drill measured."""

    name: str                   # rto | rpo
    target: float               # seconds
    measured: float | None      # None: not measured (no point passed its probes)

    @property
    def met(self) -> bool:
        return self.measured is not None and self.measured <= self.target

    @property
    def margin(self) -> float | None:
        """Seconds to spare (positive) or over (negative)."""
        return None if self.measured is None else self.target - self.measured

    def describe(self) -> str:
        """'RTO 4m 12s against 30m: met, 25m 48s to spare' / 'RPO 1h 5m against 1h: MISSED by 5m'."""
        label, target = self.name.upper(), format_duration(self.target)
        if self.measured is None:
            return f"{label} not measured against {target}: MISSED (no restored point passed its probes)"
        head = f"{label} {format_duration(self.measured)} against {target}"
        if self.met:
            return f"{head}: met, {format_duration(self.margin)} to spare"
        return f"{head}: MISSED by {format_duration(-self.margin)}"


def judge(targets: dict[str, float], rto_seconds: float | None, rpo_seconds: float | None) -> list[Judged]:
    measured = {"rto": rto_seconds, "rpo": rpo_seconds}
    return [Judged(name, float(targets[name]), measured[name]) for name in NAMES if name in targets]
