"""The demo's stages: a heading when each starts, its measured time when it ends.

The times are the point of a first run (how long would this take on my
machines?), so they are printed as they happen, again in the closing table,
and kept in the demo's directory (timings.json).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..errors import LabmgrError

DOWN_HINT = "'labmgr demo down' removes what the demo made"


class Stages:
    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.seconds: dict[str, float] = {}
        self.details: dict[str, str] = {}
        self.started = time.monotonic()

    @contextmanager
    def stage(self, name: str, title: str) -> Iterator[None]:
        self.say(f"\n[{len(self.seconds) + 1}] {title}")
        started = time.monotonic()
        try:
            yield
        except LabmgrError as exc:
            # one line naming the stage; what the demo made so far stays for a look, and goes with `demo down`
            error = LabmgrError(f"demo stage '{name}' failed: {exc}", hint=DOWN_HINT)
            error.exit_code = exc.exit_code
            raise error from None
        self.seconds[name] = round(time.monotonic() - started, 1)
        self.say(f"    {name} took {self.seconds[name]:.1f} s")

    @property
    def total(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def table(self) -> list[str]:
        lines = [f"  {name:<11} {seconds:7.1f} s  {self.details.get(name, '')}".rstrip()
                 for name, seconds in self.seconds.items()]
        return lines + [f"  {'total':<11} {self.total:7.1f} s"]

    def save(self, path: Path, **extra: object) -> None:
        path.write_text(json.dumps({"stages": self.seconds, "details": self.details, "total": self.total,
                                    **extra}, indent=2) + "\n")
