"""Network probes (tcp, http, isolation): the scripts the guest runs and how their output is judged."""

from __future__ import annotations

import re

from ..hypervisor.agent import ExecResult
from .model import isolation_addresses, resolve_target
from .plans import TIMED_OUT, Context, Plan, Verdict, failed_command


# tcp ---------------------------------------------------------------------

# bash's /dev/tcp where there is bash, else netcat
TCP_SCRIPT = ('if command -v bash >/dev/null 2>&1; then exec bash -c \'exec 3<>"/dev/tcp/$0/$1"\' "$1" "$2"; '
              'else exec nc -z -w "$3" "$1" "$2"; fi')


def plan_tcp(probe, context: Context) -> Plan:
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


def plan_http(probe, context: Context) -> Plan:
    server, address = resolve_target(context.env, probe.target)
    vhost = probe.host or server.hostname
    url = f"http://{vhost}:{probe.port}{probe.path}"

    def evaluate(result: ExecResult) -> Verdict:
        parsed = parse_http(result.stdout)
        if parsed is None:
            if result.exit_code == TIMED_OUT:
                return False, f"GET {url} ({address}): no answer within {int(probe.timeout)} s"
            return False, failed_command(result, f"GET {url} ({address})") if not result.ok or not \
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


def plan_isolation(probe, context: Context) -> Plan:
    outside, peers = isolation_addresses(probe, context.env)
    return Plan(["sh", "-c", ISOLATION_SCRIPT, "probe", str(probe.connect_timeout), *outside, *peers],
                lambda result: judge_isolation(result.stdout, probe.server, outside, peers))
