"""Points in time as users type them: ISO 8601, ``latest``, ``3 hours ago``.

Every result is a tz-aware UTC datetime; text without an offset is read as UTC
(dumps are named and catalogued in UTC, so local time would only mislead).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .errors import LabmgrError

UTC = timezone.utc

FORMS = ("ISO 8601 like 2026-11-21T08:00 or '2026-11-21 08:00Z' or with an offset (+02:00), "
         "'latest', 'now', 'yesterday', or '3 hours ago', '90 minutes ago', '2 days ago', '1h ago'")

_UNITS = {
    "s": "seconds", "sec": "seconds", "secs": "seconds", "second": "seconds", "seconds": "seconds",
    "m": "minutes", "min": "minutes", "mins": "minutes", "minute": "minutes", "minutes": "minutes",
    "h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
    "w": "weeks", "week": "weeks", "weeks": "weeks",
}
_RELATIVE = re.compile(r"^(\d+)\s*([a-z]+)\s+ago$")


class TimeParseError(LabmgrError):
    """A point in time could not be read."""


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_point(text: str, now: datetime | None = None) -> datetime:
    """Read ``text`` as a point in time (UTC, tz-aware); ``now`` anchors relative forms."""
    now = utc(now) if now is not None else datetime.now(UTC)
    words = " ".join(str(text).split()).lower()
    if words in ("latest", "now"):
        return now
    if words == "yesterday":
        return now - timedelta(days=1)
    relative = _RELATIVE.match(words)
    if relative and relative.group(2) in _UNITS:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    if words[:1].isdigit():
        try:
            return utc(datetime.fromisoformat(words.upper()))
        except ValueError:
            pass
    raise TimeParseError(f"cannot read '{text}' as a point in time (use {FORMS})")


def format_point(moment: datetime) -> str:
    """A compact UTC form for messages: ``2026-11-21T08:00Z`` (seconds only when not zero)."""
    moment = utc(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ" if moment.second else "%Y-%m-%dT%H:%MZ")
