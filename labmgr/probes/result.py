"""The outcome of one probe: the same type every notifier reads."""

from __future__ import annotations

from ..notify.model import ProbeResult

__all__ = ["ProbeResult"]
