"""Points in time as users type them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from labmgr.errors import LabmgrError
from labmgr.timeparse import format_point, parse_point

UTC = timezone.utc
NOW = datetime(2026, 11, 21, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize("text, expected", [
    ("2026-11-21T08:00", datetime(2026, 11, 21, 8, 0, tzinfo=UTC)),
    ("2026-11-21 08:00Z", datetime(2026, 11, 21, 8, 0, tzinfo=UTC)),
    ("2026-11-21 08:00z", datetime(2026, 11, 21, 8, 0, tzinfo=UTC)),
    ("2026-11-21T10:00+02:00", datetime(2026, 11, 21, 8, 0, tzinfo=UTC)),
    ("2026-11-21T03:00:30-05:00", datetime(2026, 11, 21, 8, 0, 30, tzinfo=UTC)),
    ("2026-11-21", datetime(2026, 11, 21, tzinfo=UTC)),
    ("20261121T080000Z", datetime(2026, 11, 21, 8, 0, tzinfo=UTC)),
    ("  2026-11-21T08:00  ", datetime(2026, 11, 21, 8, 0, tzinfo=UTC)),
])
def test_iso_8601_naive_is_utc(text, expected):
    point = parse_point(text, NOW)
    assert point == expected
    assert point.tzinfo is not None and point.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text, ago", [
    ("latest", timedelta(0)),
    ("now", timedelta(0)),
    ("NOW", timedelta(0)),
    ("3 hours ago", timedelta(hours=3)),
    ("1 hour ago", timedelta(hours=1)),
    ("90 minutes ago", timedelta(minutes=90)),
    ("2 days ago", timedelta(days=2)),
    ("1h ago", timedelta(hours=1)),
    ("15m ago", timedelta(minutes=15)),
    ("1 week ago", timedelta(weeks=1)),
    ("30 s ago", timedelta(seconds=30)),
    ("yesterday", timedelta(days=1)),
])
def test_relative(text, ago):
    assert parse_point(text, NOW) == NOW - ago


def test_now_defaults_to_the_clock_and_naive_now_is_utc():
    before = datetime.now(UTC)
    assert before <= parse_point("latest") <= datetime.now(UTC)
    assert parse_point("1h ago", datetime(2026, 11, 21, 12)) == datetime(2026, 11, 21, 11, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "soon", "3 fortnights ago", "hours ago", "2026-13-01", "ago 3 hours",
                                  "2026-11-21T25:00", "-1 hours ago"])
def test_bad_input_is_one_line_naming_the_text_and_the_forms(text):
    with pytest.raises(LabmgrError) as caught:
        parse_point(text, NOW)
    message = str(caught.value)
    assert "\n" not in message
    assert f"'{text}'" in message
    assert "ISO 8601" in message and "3 hours ago" in message and "latest" in message


def test_format_point():
    assert format_point(datetime(2026, 11, 21, 8, 0, tzinfo=UTC)) == "2026-11-21T08:00Z"
    assert format_point(datetime(2026, 11, 21, 9, 0, 5, tzinfo=timezone(timedelta(hours=1)))) == "2026-11-21T08:00:05Z"
