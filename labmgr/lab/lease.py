"""A lab's lease: how long people may keep it (``lab gc --expired`` removes it after)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from ..errors import LabError
from . import records
from .records import LabRecord

_DURATION = re.compile(r"^(\d+)\s*([hd])$")


def lease_hours(text: str) -> float:
    """'8h' -> 8, '2d' -> 48."""
    match = _DURATION.match(text.strip().lower())
    if not match or int(match[1]) == 0:
        raise LabError(f"'{text}' is not a lease extension", hint="give hours or days, e.g. 8h or 2d")
    return int(match[1]) * (24 if match[2] == "d" else 1)


def extend_lease(name: str, hours: float, now: datetime | None = None) -> LabRecord:
    """Add ``hours`` to the lab's lease, counted from its end (or from now when it has none or it ended)."""
    if hours <= 0:
        raise LabError("a lease is extended by a positive number of hours", hint="e.g. 8h or 2d")
    record = records.load(name)
    moment = now or datetime.now(timezone.utc)
    start = moment
    if record.lease_until:
        start = max(moment, datetime.fromisoformat(record.lease_until.replace("Z", "+00:00")))
    record.lease_until = (start + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    record.save()
    return record
