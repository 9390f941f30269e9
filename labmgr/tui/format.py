"""How the screens write times, leases and errors (pure functions: tested without a terminal)."""

from __future__ import annotations

from datetime import datetime

from ..errors import LabmgrError


def lease_left(lease_until: str, now: datetime) -> str:
    if not lease_until:
        return "—"
    until = datetime.fromisoformat(lease_until.replace("Z", "+00:00"))
    seconds = int((until - now).total_seconds())
    if seconds <= 0:
        return "expired"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h" if days else f"{hours}h {rest // 60:02d}m"


def error_text(error: BaseException) -> str:
    """The whole error: a LabmgrError with its hint, anything else with its type (a bug)."""
    if isinstance(error, LabmgrError):
        return str(error)
    return f"internal error: {type(error).__name__}: {error} (please report it)"


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 600 else f"{value / 60:.0f} min"
