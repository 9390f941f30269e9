"""Every command first finishes what a killed labmgr left half-done (labmgr.recovery)."""

from __future__ import annotations

from .progress import RichReporter


def recover_first() -> None:
    from ..recovery import recover

    try:
        recover(RichReporter())
    except Exception as exc:      # never in the way of the command asked for
        RichReporter().note(f"recovery of interrupted work failed: {type(exc).__name__}: {exc}")
