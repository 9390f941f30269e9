"""What each probe kind runs in the guest, and how its output is judged.

``plan(probe, context)`` returns a ``Plan``: the argv to run through the guest
agent (inside coreutils ``timeout``, so a stuck command is killed in the guest
too) and a function that turns the ExecResult into (passed, detail). Everything
here is pure: the unit tests feed it canned ExecResults.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ..hypervisor.agent import ExecResult
from ..spec.model import Environment
from ..timeparse import format_point
from .durations import format_duration
from .model import isolation_addresses, resolve_target

Verdict = tuple[bool, str]
MAX_RANGES = 20
TIMED_OUT = 124      # coreutils timeout's exit status


@dataclass
class Context:
    env: Environment
    point: datetime | None          # the lab's point in time (record.point["at"]); None: never restored
    now: datetime | None = None     # for tests; default: the current time
    # compare_previous: probe name -> (point, value) read at the latest earlier point; and what this run read
    previous: dict[str, tuple[str, str]] = field(default_factory=dict)
    recorded: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    argv: list[str]
    evaluate: Callable[[ExecResult], Verdict]
    stdin: bytes | None = None


def plan(probe, context: Context) -> Plan:
    return PLANNERS[probe.kind](probe, context)


def guarded(argv: list[str], seconds: float) -> list[str]:
    """``argv`` under coreutils timeout: killed in the guest after ``seconds`` (then KILL 5 s later)."""
    return ["timeout", "-k", "5", f"{max(1, math.ceil(seconds))}", *argv]


# sql ---------------------------------------------------------------------

def sql_argv(engine: str, database: str, query: str) -> list[str]:
    if engine == "postgres":
        return ["runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                "-d", database, "-c", query]
    return ["mariadb", "-N", "-B", database, "-e", query]


def _failed_command(result: ExecResult, what: str) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    tail = " | ".join(line.strip() for line in lines[-2:]) or "no output"
    return f"{what} exited {result.exit_code}: {tail}"


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


def _plan_sql(probe, context: Context) -> Plan:
    def evaluate(result: ExecResult) -> Verdict:
        if not result.ok:
            return False, _failed_command(result, f"{probe.engine} query")
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


def _plan_gaps(probe, context: Context) -> Plan:
    what = probe.what or f"{probe.table}.{probe.column} values"

    def evaluate(result: ExecResult) -> Verdict:
        if not result.ok:
            return False, _failed_command(result, f"{probe.engine} query")
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


def _plan_freshness(probe, context: Context) -> Plan:
    what = f"{probe.table}.{probe.column}"

    def evaluate(result: ExecResult) -> Verdict:
        if not result.ok:
            return False, _failed_command(result, f"{probe.engine} query")
        return judge_freshness(result.stdout, what, probe.within, context.point, context.now)
    return Plan(sql_argv(probe.engine, probe.database, freshness_query(probe.engine, probe.table, probe.column)),
                evaluate)


# command -----------------------------------------------------------------

def _plan_command(probe, context: Context) -> Plan:
    def evaluate(result: ExecResult) -> Verdict:
        if result.exit_code not in probe.exits:
            wanted = " or ".join(map(str, probe.exits))
            return False, _failed_command(result, "command") + f" (expected exit {wanted})"
        if probe.output_matches is not None:
            output = result.stdout + result.stderr
            if not re.search(probe.output_matches, output, re.MULTILINE):
                last = output.strip().splitlines()[-1:] or ["no output"]
                return False, f"output does not match /{probe.output_matches}/ (last line: {last[0][:120]})"
            return True, f"exit {result.exit_code}, output matches /{probe.output_matches}/"
        return True, f"exit {result.exit_code}"
    return Plan(probe.argv, evaluate)


# tcp ---------------------------------------------------------------------

# bash's /dev/tcp where there is bash, else netcat
TCP_SCRIPT = ('if command -v bash >/dev/null 2>&1; then exec bash -c \'exec 3<>"/dev/tcp/$0/$1"\' "$1" "$2"; '
              'else exec nc -z -w "$3" "$1" "$2"; fi')


def _plan_tcp(probe, context: Context) -> Plan:
    server, address = resolve_target(context.env, probe.target)
    where = f"{server.name} ({address}) port {probe.port}"

    def evaluate(result: ExecResult) -> Verdict:
        if result.exit_code == TIMED_OUT:
            is_open, how = False, "no answer (timed out)"
        else:
            is_open = result.ok
            how = "open" if is_open else f"closed ({(result.stderr.strip().splitlines() or ['refused'])[-1][:100]})"
        if (probe.expect == "open") == is_open:
            return True, f"{where} is {how}" if is_open else f"{where}: {how}, as expected"
        return False, f"{where}: {how}, expected {probe.expect}"
    seconds = max(1, int(probe.timeout))
    return Plan(["sh", "-c", TCP_SCRIPT, "probe", address, str(probe.port), str(seconds)], evaluate)


# http --------------------------------------------------------------------

# curl where there is curl, else a raw HTTP/1.0 request over bash's /dev/tcp
HTTP_SCRIPT = r'''
host=$1 port=$2 path=$3 vhost=$4 seconds=$5
if command -v curl >/dev/null 2>&1; then
  exec curl -sS -i --max-time "$seconds" -H "Host: $vhost" "http://$host:$port$path"
fi
exec bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 7
printf "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: labmgr-probe\r\nConnection: close\r\n\r\n" "$2" "$3" >&3
cat <&3' "$host" "$port" "$path" "$vhost"
'''


def parse_http(raw: str) -> tuple[int, dict[str, str], str] | None:
    """Status, headers (lower-case names) and body of a raw HTTP response; None if it is not one."""
    head, sep, body = raw.partition("\r\n\r\n")
    if not sep:
        head, _, body = raw.partition("\n\n")
    lines = head.replace("\r\n", "\n").split("\n")
    match = re.match(r"^HTTP/\d(?:\.\d)?\s+(\d{3})", lines[0].strip())
    if not match:
        return None
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return int(match.group(1)), headers, body


def _plan_http(probe, context: Context) -> Plan:
    server, address = resolve_target(context.env, probe.target)
    vhost = probe.host or server.hostname
    url = f"http://{vhost}:{probe.port}{probe.path}"

    def evaluate(result: ExecResult) -> Verdict:
        parsed = parse_http(result.stdout)
        if parsed is None:
            if result.exit_code == TIMED_OUT:
                return False, f"GET {url} ({address}): no answer within {int(probe.timeout)} s"
            return False, _failed_command(result, f"GET {url} ({address})") if not result.ok or not \
                result.stdout.strip() else f"GET {url}: not an HTTP response: {result.stdout.strip()[:80]!r}"
        status, headers, body = parsed
        failures = []
        if status not in probe.statuses:
            failures.append(f"status {status}, expected {' or '.join(map(str, probe.statuses))}")
        for name, regex in probe.headers.items():
            value = headers.get(name.lower())
            if value is None:
                failures.append(f"no {name} header")
            elif not re.search(regex, value):
                failures.append(f"header {name}: '{value[:80]}' does not match /{regex}/")
        if probe.body_matches is not None and not re.search(probe.body_matches, body, re.MULTILINE):
            failures.append(f"body ({len(body)} bytes) does not match /{probe.body_matches}/")
        if failures:
            return False, f"GET {url}: " + "; ".join(failures)
        return True, f"GET {url}: status {status}, {len(body)} bytes"
    seconds = max(1, int(probe.timeout))
    return Plan(["sh", "-c", HTTP_SCRIPT, "probe", address, str(probe.port), probe.path, vhost, str(seconds)],
                evaluate)


# checksum ----------------------------------------------------------------

def judge_checksums(output: str, manifest: dict[str, str]) -> Verdict:
    found: dict[str, str] = {}
    for line in output.splitlines():
        digest, sep, path = line.partition("  ")
        if sep and re.fullmatch(r"[0-9a-f]{64}", digest):
            found[path] = digest
    bad = []
    for path, expected in manifest.items():
        actual = found.get(path)
        if actual is None:
            bad.append(f"{path} (missing or unreadable)")
        elif actual != expected:
            bad.append(f"{path} (sha256 {actual[:12]}..., expected {expected[:12]}...)")
    if bad:
        return False, f"{len(bad)} of {len(manifest)} files differ: " + ", ".join(bad[:10]) + \
            (f", ... ({len(bad) - 10} more)" if len(bad) > 10 else "")
    return True, f"{len(manifest)} files match their sha256"


def _plan_checksum(probe, context: Context) -> Plan:
    def evaluate(result: ExecResult) -> Verdict:
        return judge_checksums(result.stdout, probe.manifest)
    return Plan(["sha256sum", "--", *probe.manifest], evaluate)


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


def _plan_compare(probe, context: Context) -> Plan:
    def evaluate(result: ExecResult) -> Verdict:
        if not result.ok:
            return False, _failed_command(result, f"{probe.engine} query")
        passed, detail, number = judge_change(result.stdout, context.previous.get(probe.name), probe.max_drop,
                                              probe.max_growth)
        if number is not None:
            context.recorded[probe.name] = result.stdout.strip()
        return passed, detail
    return Plan(sql_argv(probe.engine, probe.database, probe.query), evaluate)


# isolation -----------------------------------------------------------------

# Every address is tried at once (background jobs): "host" with ping, "host:port" with a TCP
# connect. A host answers when it replies to ping, accepts the connection or refuses it (a
# refusal is an answer too); it is silent when nothing comes back within the timeout.
ISOLATION_SCRIPT = r"""
seconds=$1; shift
tcp() {
  err=$(timeout "$seconds" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>&1 >/dev/null) && { echo connected; return; }
  case $err in *[Rr]efused*) echo refused ;; esac
}
try() {
  case $1 in
    *:*) how=$(tcp "${1%:*}" "${1##*:}") ;;
    *) if command -v ping >/dev/null 2>&1; then
         ping -c 1 -W "$seconds" "$1" >/dev/null 2>&1 && how=ping || how=
       else how=$(tcp "$1" 22); fi ;;
  esac
  if [ -n "$how" ]; then echo "answers $1 $how"; else echo "silent $1"; fi
}
for target in "$@"; do try "$target" & done
wait
"""


def judge_isolation(output: str, server: str, outside: dict[str, str], peers: dict[str, str]) -> Verdict:
    """``outside`` ({address: what it is}) must be silent and ``peers`` ({address: server}) must answer."""
    seen: dict[str, str] = {}
    for line in output.splitlines():
        state, _, rest = line.strip().partition(" ")
        target, _, how = rest.partition(" ")
        seen[target] = f"answers ({how})" if state == "answers" else state
    leaks = [f"{what} {target} {seen[target]}" for target, what in outside.items()
             if seen.get(target, "").startswith("answers")]
    deaf = [f"lab peer {peer} ({target})" for target, peer in peers.items() if seen.get(target) == "silent"]
    unknown = [t for t in [*outside, *peers] if t not in seen]
    if leaks:
        return False, f"not isolated: from {server}, " + ", ".join(leaks)
    if deaf:
        return False, f"from {server}, {' and '.join(deaf)} {'does' if len(deaf) == 1 else 'do'} not answer"
    if unknown:
        return False, f"could not try {', '.join(unknown)}"
    text = f"isolated: from {server}, {len(outside)} outside addresses silent"
    if outside:
        text += f" ({', '.join(outside)})"
    if peers:
        text += f"; {len(peers)} lab peers answer ({', '.join(f'{peer} {t}' for t, peer in peers.items())})"
    return True, text


def _plan_isolation(probe, context: Context) -> Plan:
    outside, peers = isolation_addresses(probe, context.env)
    return Plan(["sh", "-c", ISOLATION_SCRIPT, "probe", str(probe.connect_timeout), *outside, *peers],
                lambda result: judge_isolation(result.stdout, probe.server, outside, peers))


PLANNERS: dict[str, Callable[..., Plan]] = {
    "compare_previous": _plan_compare,
    "isolation": _plan_isolation,
    "sql": _plan_sql,
    "sequence_gaps": _plan_gaps,
    "freshness": _plan_freshness,
    "command": _plan_command,
    "tcp": _plan_tcp,
    "http": _plan_http,
    "checksum": _plan_checksum,
}
