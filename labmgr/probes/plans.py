"""What every probe check is made of: the Context it is planned in, its Plan (argv and judge), the verdict."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ..hypervisor.agent import ExecResult
from ..spec.model import Environment

Verdict = tuple[bool, str]
TIMED_OUT = 124      # coreutils timeout's exit status


@dataclass
class Context:
    env: Environment
    point: datetime | None          # the lab's point in time (record.point["at"]); None: never restored
    now: datetime | None = None     # for tests; default: the current time
    # compare_previous: probe name -> (point, value) read at the latest earlier point; and what this run read
    previous: dict[str, tuple[str, str]] = field(default_factory=dict)
    recorded: dict[str, str] = field(default_factory=dict)
    # drift: server -> this hour's data profile; server -> (point, profile) of the nearest earlier hour
    profiles: dict[str, dict] = field(default_factory=dict)
    previous_profiles: dict[str, tuple[str, dict]] = field(default_factory=dict)


@dataclass
class Plan:
    argv: list[str]         # empty: judged on the host alone (drift), nothing runs in the guest
    evaluate: Callable[[ExecResult], Verdict]
    stdin: bytes | None = None


def guarded(argv: list[str], seconds: float) -> list[str]:
    """``argv`` under coreutils timeout: killed in the guest after ``seconds`` (then KILL 5 s later)."""
    return ["timeout", "-k", "5", f"{max(1, math.ceil(seconds))}", *argv]


def failed_command(result: ExecResult, what: str) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    tail = " | ".join(line.strip() for line in lines[-2:]) or "no output"
    return f"{what} exited {result.exit_code}: {tail}"
