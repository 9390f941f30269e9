"""Database probes (sql, sequence_gaps, freshness, compare_previous): their queries and how the output is judged."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from ..hypervisor.agent import ExecResult
from ..timeparse import format_point
from .durations import format_duration
from .plans import Context, Plan, Verdict, failed_command

MAX_RANGES = 20


# sql ---------------------------------------------------------------------

def sql_argv(engine: str, database: str, query: str) -> list[str]:
    if engine == "postgres":
        return ["runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                "-d", database, "-c", query]
    return ["mariadb", "-N", "-B", database, "-e", query]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def judge_output(output: str, expect) -> Verdict:
    """Check a query's output (tab-separated rows) against ``expect``; the detail shows the value."""
    rows = [row for row in output.splitlines() if row.strip() != ""]
    value = output.strip()
    shown = value if len(value) <= 80 and "\n" not in value else f"{len(rows)} rows"
    if expect is None:
        return True, f"query ran: {shown or 'no rows'}"
    failures = []
    if expect.rows is not None and len(rows) != expect.rows:
        failures.append(f"{len(rows)} rows, expected {expect.rows}")
    if expect.equals is not None:
        wanted = expect.equals
        if isinstance(wanted, bool):
            wanted = "t" if wanted else "f"
        a, b = _number(value), _number(str(wanted))
        same = (a == b) if a is not None and b is not None else value == str(wanted)
        if not same:
            failures.append(f"got '{shown}', expected {expect.equals!r}")
    if expect.at_least is not None or expect.between is not None:
        number = _number(value)
        if number is None:
            failures.append(f"got '{shown}', not a number")
        else:
            if expect.at_least is not None and number < expect.at_least:
                failures.append(f"got {value}, expected at least {_plain(expect.at_least)}")
            if expect.between is not None and not expect.between[0] <= number <= expect.between[1]:
                failures.append(f"got {value}, expected between {_plain(expect.between[0])} and "
                                f"{_plain(expect.between[1])}")
    if expect.matches is not None and not re.search(expect.matches, output, re.MULTILINE):
        failures.append(f"output '{shown}' does not match /{expect.matches}/")
    if failures:
        return False, "; ".join(failures)
    return True, f"got {shown or 'no rows'}"


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def plan_sql(probe, context: Context) -> Plan:
    def evaluate(result: ExecResult) -> Verdict:
        if not result.ok:
            return False, failed_command(result, f"{probe.engine} query")
        return judge_output(result.stdout, probe.expect)
    return Plan(sql_argv(probe.engine, probe.database, probe.query), evaluate)


# sequence_gaps -----------------------------------------------------------

def gaps_query(table: str, column: str) -> str:
    """One query for both engines: a 'range' row (min, max, count) and up to 1000 'gap' rows (first, last)."""
    return (f"SELECT 'range' AS k, min({column}) AS a, max({column}) AS b, count({column}) AS n FROM {table} "
            f"UNION ALL SELECT * FROM (SELECT 'gap' AS k, {column} + 1 AS a, nx - 1 AS b, 0 AS n FROM "
            f"(SELECT {column}, lead({column}) OVER (ORDER BY {column}) AS nx FROM {table}) x "
            f"WHERE nx > {column} + 1 ORDER BY 2 LIMIT 1000) g")


def format_ranges(ranges: list[tuple[int, int]], limit: int = MAX_RANGES) -> str:
    """``[(17, 17), (42, 60)]`` -> ``17, 42..60``; more than ``limit`` ranges end with a count."""
    shown = [str(a) if a == b else f"{a}, {b}" if b == a + 1 else f"{a}..{b}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        shown.append(f"... ({len(ranges) - limit} more ranges)")
    return ", ".join(shown)


def judge_gaps(output: str, what: str, start: int | None = None) -> Verdict:
    low = high = None
    count = 0
    gaps: list[tuple[int, int]] = []
    for row in output.splitlines():
        cells = row.split("\t")
        if len(cells) < 3:
            continue
        if cells[0] == "range":
            if cells[1] in ("", "NULL"):
                return False, f"no {what} at all (the table is empty)"
            low, high, count = int(cells[1]), int(cells[2]), int(cells[3]) if len(cells) > 3 else 0
        elif cells[0] == "gap":
            gaps.append((int(cells[1]), int(cells[2])))
    if low is None or high is None:
        return False, f"unexpected query output: {output.strip()[:200]!r}"
    if start is not None and low > start:
        gaps.insert(0, (start, low - 1))
    first = start if start is not None and start < low else low
    if not gaps:
        return True, f"{count} {what}, {first}..{high}, none missing"
    missing = sum(b - a + 1 for a, b in gaps)
    truncated = " (listing capped at 1000 gaps)" if len(gaps) >= 1000 else ""
    return False, (f"missing {what}: {format_ranges(gaps)} ({missing} missing of {first}..{high}){truncated}")


def plan_gaps(probe, context: Context) -> Plan:
    what = probe.what or f"{probe.table}.{probe.column} values"

    def evaluate(result: ExecResult) -> Verdict:
        if not result.ok:
            return False, failed_command(result, f"{probe.engine} query")
        return judge_gaps(result.stdout, what, probe.start)
    return Plan(sql_argv(probe.engine, probe.database, gaps_query(probe.table, probe.column)), evaluate)


# freshness ---------------------------------------------------------------

def freshness_query(engine: str, table: str, column: str) -> str:
    if engine == "postgres":
        return f"SELECT extract(epoch FROM max({column})) FROM {table}"
    return f"SELECT UNIX_TIMESTAMP(max({column})) FROM {table}"


def judge_freshness(output: str, what: str, within: timedelta, point: datetime | None,
                    now: datetime | None = None) -> Verdict:
    value = output.strip().splitlines()[0].strip() if output.strip() else ""
    if value in ("", "NULL"):
        return False, f"no {what} at all (the table is empty)"
    try:
        newest = datetime.fromtimestamp(float(value), timezone.utc)
    except (ValueError, OverflowError):
        return False, f"newest {what} is not a timestamp: {value!r}"
    anchor = point or now or datetime.now(timezone.utc)
    against = "the lab's point in time" if point else "now (the lab was never restored to a point)"
    rpo = anchor - newest
    text = (f"newest {what} {format_point(newest)}, {format_duration(rpo)} before {against} "
            f"{format_point(anchor)}: RPO {format_duration(rpo)}")
    if rpo > within:
        return False, f"{text}, more than the allowed {format_duration(within)}"
    return True, f"{text} (allowed {format_duration(within)})"


def plan_freshness(probe, context: Context) -> Plan:
    what = f"{probe.table}.{probe.column}"

    def evaluate(result: ExecResult) -> Verdict:
        if not result.ok:
            return False, failed_command(result, f"{probe.engine} query")
        return judge_freshness(result.stdout, what, probe.within, context.point, context.now)
    return Plan(sql_argv(probe.engine, probe.database, freshness_query(probe.engine, probe.table, probe.column)),
                evaluate)


# compare_previous ----------------------------------------------------------

def _allowed(amount: float | str | None, base: float) -> float | None:
    if amount is None:
        return None
    if isinstance(amount, str):
        return abs(base) * float(amount.rstrip("%")) / 100
    return float(amount)


def judge_change(output: str, previous: tuple[str, str] | None, max_drop: float | str,
                 max_growth: float | str | None) -> tuple[bool, str, float | None]:
    """(passed, detail, the value read) for a number compared with the one read at an earlier point."""
    value = output.strip()
    number = _number(value)
    if number is None:
        return False, f"got '{value[:80]}', not a single number", None
    if previous is None:
        return True, f"got {value}; no earlier point to compare with (recorded for the next run)", number
    point, before_text = previous
    before = float(before_text)
    change = number - before
    percent = f" ({change / before * 100:+.1f}%)" if before else ""
    text = f"{before_text} at {point} -> {value}: {'+' if change >= 0 else ''}{_plain(change)}{percent}"
    drop, growth = _allowed(max_drop, before), _allowed(max_growth, before)
    if change < 0 and drop is not None and -change > drop:
        return False, f"{text}, dropped more than the allowed {max_drop}", number
    if change > 0 and growth is not None and change > growth:
        return False, f"{text}, grew more than the allowed {max_growth}", number
    return True, text, number


def plan_compare(probe, context: Context) -> Plan:
    def evaluate(result: ExecResult) -> Verdict:
        if not result.ok:
            return False, failed_command(result, f"{probe.engine} query")
        passed, detail, number = judge_change(result.stdout, context.previous.get(probe.name), probe.max_drop,
                                              probe.max_growth)
        if number is not None:
            context.recorded[probe.name] = result.stdout.strip()
        return passed, detail
    return Plan(sql_argv(probe.engine, probe.database, probe.query), evaluate)
