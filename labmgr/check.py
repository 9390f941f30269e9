"""One finding of `labmgr doctor` (here or on a remote hypervisor), and the free-space floor both judge by."""

from __future__ import annotations

from dataclasses import dataclass

MIN_FREE_GIB = 10


@dataclass(frozen=True)
class Check:
    name: str
    status: str          # ok, warn, fail
    detail: str
    fix: str = ""
