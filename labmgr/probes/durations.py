"""Durations as probe files write them (``2h``, ``90m``, ``1h30m``, ``2d``) and as reports print them."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*(w|d|h|m|s)")
_UNIT = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: object) -> timedelta:
    """``"2h"`` -> 2 hours; a bare number is seconds. Raises ValueError naming the forms."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return timedelta(seconds=text)
    words = "".join(str(text).split()).lower()
    if words and _PART.sub("", words) == "" and _PART.search(words):
        total = timedelta()
        for number, unit in _PART.findall(words):
            total += timedelta(**{_UNIT[unit]: int(number)})
        return total
    raise ValueError(f"'{text}' is not a duration (use e.g. 2h, 90m, 1h30m, 1d, or seconds)")


def format_duration(delta: timedelta) -> str:
    """``1h30m``, ``45m``, ``2d3h``, ``20s``; negative durations get a leading '-'."""
    seconds = int(round(delta.total_seconds()))
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds}s"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m")] + ([(secs, "s")] if not days else [])
    return sign + "".join(f"{n}{u}" for n, u in parts if n) or "0s"
