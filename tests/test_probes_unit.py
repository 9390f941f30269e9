"""Probes without a hypervisor: loading (errors with file:line) and every kind judged on canned output."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from labmgr.errors import AgentError, NotFoundError, SpecError
from labmgr.hypervisor.agent import ExecResult
from labmgr.probes import ProbeResult, load_probes, run_probes
from labmgr.probes.checks import format_ranges, gaps_query, judge_freshness, parse_http
from labmgr.probes.durations import format_duration, parse_duration
from labmgr.probes.model import isolation_addresses
from labmgr.spec.model import Environment

ENV = Environment.model_validate({
    "name": "shop",
    "networks": [{"name": "lan", "cidr": "10.90.0.0/24"}],
    "servers": [
        {"name": "db", "hostname": "db01.shop.test", "domain": "prod-db",
         "nics": [{"network": "lan", "ip": "10.90.0.11", "mac": "52:54:00:90:00:11"}],
         "dumps": [{"name": "invoices", "kind": "postgres", "database": "shop"},
                   {"name": "uploads", "kind": "files", "path": "/srv/uploads"}]},
        {"name": "crm", "hostname": "crm01.shop.test", "domain": "prod-crm",
         "nics": [{"network": "lan", "ip": "10.90.0.12", "mac": "52:54:00:90:00:12"}],
         "dumps": [{"name": "crm", "kind": "mariadb", "database": "crm"}]},
        {"name": "web", "hostname": "web01.shop.test", "domain": "prod-web",
         "nics": [{"network": "lan", "ip": "10.90.0.13", "mac": "52:54:00:90:00:13"}],
         "dumps": [{"name": "static", "kind": "files", "path": "/var/www"}]},
    ],
})
POINT = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)
RECORD = SimpleNamespace(name="shop-1", hypervisor="test:///default", point={"at": "2026-11-20T09:30Z"})


def ok(stdout: str = "", stderr: str = "") -> ExecResult:
    return ExecResult(0, stdout, stderr)


class FakeAgent:
    """Answers guest-exec with canned results: ``respond(argv) -> ExecResult`` (argv without the
    ``timeout`` wrapper), or raises what ``respond`` raises."""

    def __init__(self, respond, delay: float = 0) -> None:
        self.respond = respond
        self.delay = delay
        self.calls: list[tuple[list[str], float | None]] = []
        self.lock = threading.Lock()
        self.running = self.most = 0

    def exec(self, argv, timeout=None, stdin=None, env=None) -> ExecResult:
        assert argv[:3] == ["timeout", "-k", "5"]
        inner = argv[4:]
        with self.lock:
            self.calls.append((inner, timeout))
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.delay)
            return self.respond(inner)
        finally:
            with self.lock:
                self.running -= 1


def write(tmp_path: Path, probes: list[dict]) -> Path:
    path = tmp_path / "probes.yaml"
    path.write_text(yaml.safe_dump({"probes": probes}, sort_keys=False))
    return path


def probe_file(tmp_path: Path, *probes: dict):
    return load_probes(write(tmp_path, list(probes)), ENV)


def run_one(tmp_path: Path, probe: dict, respond, **kwargs) -> tuple[ProbeResult, FakeAgent]:
    agent = FakeAgent(respond)
    probes = probe_file(tmp_path, {"name": "p", "server": "db", **probe})
    [result] = run_probes(RECORD, ENV, probes, agent_for=lambda server: agent, **kwargs)
    return result, agent


# loading -----------------------------------------------------------------

def load_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "probes.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_probes(path, ENV)
    message = str(caught.value)
    assert message.startswith(f"{path}:"), message
    return message[len(str(path)):]


def test_a_probe_file_loads_with_defaults_and_inferred_database(tmp_path) -> None:
    probes = probe_file(tmp_path,
                        {"name": "count", "kind": "sql", "server": "db", "query": "SELECT 1"},
                        {"name": "contacts", "kind": "sql", "server": "crm", "query": "SELECT 1",
                         "expect": {"equals": 1}})
    assert [(p.engine, p.database, p.timeout, p.severity) for p in probes] == [
        ("postgres", "shop", 60, "critical"), ("mariadb", "crm", 60, "critical")]


def test_unknown_kind_names_the_line_and_the_kinds(tmp_path) -> None:
    message = load_error(tmp_path, "probes:\n  - name: a\n    server: db\n    kind: smoke\n")
    assert message.startswith(":4: probes[0].kind: unknown kind 'smoke' (kinds: sql, sequence_gaps")


def test_missing_and_unknown_server(tmp_path) -> None:
    message = load_error(tmp_path, "probes:\n  - name: a\n    kind: command\n    command: [/bin/true]\n")
    assert message == ":2: probes[0].server: required key 'server' is missing"
    message = load_error(tmp_path, "probes:\n  - name: a\n    kind: command\n    command: [/bin/true]\n"
                                   "    server: mail\n")
    assert message == ":5: probes[0].server: unknown server 'mail' (servers: crm, db, web)"


def test_a_query_on_a_server_with_no_database(tmp_path) -> None:
    message = load_error(tmp_path, "probes:\n  - name: a\n    kind: sql\n    server: web\n    query: SELECT 1\n")
    assert message.startswith(":4: probes[0].server: query on a server with no database: server web has no "
                              "postgres or mariadb dump source (its dump sources: static (files))")
    message = load_error(tmp_path, "probes:\n  - name: a\n    kind: freshness\n    server: db\n"
                                   "    engine: mariadb\n    table: t\n    column: c\n    within: 1h\n")
    assert message.startswith(":5: probes[0].engine: query on a server with no database: server db has no "
                              "mariadb dump source")


def test_duplicate_names(tmp_path) -> None:
    message = load_error(tmp_path, "probes:\n  - {name: a, kind: command, server: db, command: 'true'}\n"
                                   "  - {name: b, kind: command, server: db, command: 'true'}\n"
                                   "  - {name: a, kind: command, server: crm, command: 'true'}\n")
    assert message == ":4: probes[2].name: duplicate probe name 'a' (also at line 2)"


@pytest.mark.parametrize("text, expected", [
    ("probes:\n  - {name: a, kind: sql, server: db, query: 'SELECT 1', colour: red}\n",
     ":2: probes[0].colour: unknown key 'colour'"),
    ("probes:\n  - name: a\n    kind: sql\n    server: db\n    query: x\n    expect: {}\n",
     ":6: probes[0].expect: expect needs one of equals, at_least, between, matches, rows"),
    ("probes:\n  - name: a\n    kind: sql\n    server: db\n    query: x\n    expect: {matches: '(('}\n",
     ":6: probes[0].expect.matches: '((' is not a valid regular expression"),
    ("probes:\n  - name: a\n    kind: freshness\n    server: db\n    table: t\n    column: c\n    within: soon\n",
     ":7: probes[0].within: 'soon' is not a duration"),
    ("probes:\n  - name: a\n    kind: sequence_gaps\n    server: db\n    table: 't; DROP TABLE t'\n"
     "    column: c\n", ":5: probes[0].table: 't; DROP TABLE t' is not a plain table or column name"),
    ("probes:\n  - {name: a, kind: tcp, server: db, target: 192.168.1.1, port: 22}\n",
     ":2: probes[0].target: '192.168.1.1' is not a server of environment shop"),
    ("probes:\n  - {name: a, kind: command, server: db, command: x, severity: fatal}\n",
     ":2: probes[0].severity: Input should be 'critical' or 'warning'"),
    ("probes:\n  - name: a\n    kind: checksum\n    server: db\n    manifest: {etc/passwd: abc}\n",
     ":5: probes[0].manifest: 'etc/passwd' is not an absolute path"),
    ("probes: []\n", ":1: probes: List should have at least 1 item"),
    ("checks: []\n", ":1: checks: unknown key 'checks'"),
])
def test_load_errors_name_file_line_and_field(tmp_path, text, expected) -> None:
    assert load_error(tmp_path, text).startswith(expected)


def test_an_ambiguous_engine_must_be_named(tmp_path) -> None:
    env = ENV.model_copy(deep=True)
    both = Environment.model_validate({**env.model_dump(mode="json"), "servers": [
        {**ENV.servers[0].model_dump(mode="json"),
         "dumps": [{"name": "a", "kind": "postgres", "database": "x"}, {"name": "b", "kind": "mariadb",
                                                                        "database": "y"}]}]})
    path = write(tmp_path, [{"name": "a", "kind": "sql", "server": "db", "query": "SELECT 1"}])
    with pytest.raises(SpecError, match=r":4: probes\[0\].server: server db has both postgres and mariadb"):
        load_probes(path, both)


# sql ---------------------------------------------------------------------

@pytest.mark.parametrize("expect, output, passed, detail", [
    (None, "3\n", True, "query ran: 3"),
    ({"equals": 30}, "30\n", True, "got 30"),
    ({"equals": 30}, "29\n", False, "got '29', expected 30"),
    ({"equals": "open"}, "open\n", True, "got open"),
    ({"equals": True}, "t\n", True, "got t"),
    ({"at_least": 20}, "20\n", True, "got 20"),
    ({"at_least": 20}, "19\n", False, "got 19, expected at least 20"),
    ({"at_least": 20}, "\n", False, "got '', not a number"),
    ({"between": [1, 5]}, "5.0\n", True, "got 5.0"),
    ({"between": [1, 5]}, "6\n", False, "got 6, expected between 1 and 5"),
    ({"matches": "^15\\.\\d"}, "15.4\n", True, "got 15.4"),
    ({"matches": "^16"}, "15.4\n", False, "output '15.4' does not match /^16/"),
    ({"rows": 2}, "a\t1\nb\t2\n", True, "got 2 rows"),
    ({"rows": 3}, "a\t1\nb\t2\n", False, "2 rows, expected 3"),
])
def test_sql_expectations(tmp_path, expect, output, passed, detail) -> None:
    probe = {"kind": "sql", "query": "SELECT count(*) FROM invoices", **({"expect": expect} if expect else {})}
    result, agent = run_one(tmp_path, probe, lambda argv: ok(output))
    assert (result.passed, result.detail) == (passed, detail)
    assert agent.calls[0][0] == ["runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-F", "\t", "-v",
                                 "ON_ERROR_STOP=1", "-d", "shop", "-c", "SELECT count(*) FROM invoices"]
    assert agent.calls[0][1] == 70         # the probe's timeout and a grace on the host
    assert result.output_tail == output.rstrip("\n")


def test_sql_on_mariadb_and_a_failing_query(tmp_path) -> None:
    agent = FakeAgent(lambda argv: ExecResult(1, "", "ERROR 1146 (42S02) at line 1: Table 'crm.x' doesn't exist\n"))
    probes = probe_file(tmp_path, {"name": "p", "kind": "sql", "server": "crm", "query": "SELECT 1 FROM x"})
    [result] = run_probes(RECORD, ENV, probes, agent_for=lambda server: agent)
    assert agent.calls[0][0] == ["mariadb", "-N", "-B", "crm", "-e", "SELECT 1 FROM x"]
    assert not result.passed
    assert result.detail == "mariadb query exited 1: ERROR 1146 (42S02) at line 1: Table 'crm.x' doesn't exist"
    assert (result.name, result.server, result.kind, result.severity) == ("p", "crm", "sql", "critical")


# sequence_gaps -------------------------------------------------------------

def gaps_output(low, high, count, gaps) -> str:
    return "".join([f"range\t{low}\t{high}\t{count}\n"] + [f"gap\t{a}\t{b}\t0\n" for a, b in gaps])


def test_format_ranges() -> None:
    assert format_ranges([(17, 17), (42, 60)]) == "17, 42..60"
    assert format_ranges([(3, 4)]) == "3, 4"
    assert format_ranges([(n, n) for n in range(1, 50, 2)], limit=3) == "1, 3, 5, ... (22 more ranges)"


def test_sequence_gaps_pass_and_fail(tmp_path) -> None:
    probe = {"kind": "sequence_gaps", "table": "invoices", "column": "no", "what": "invoice numbers"}
    result, agent = run_one(tmp_path, probe, lambda argv: ok(gaps_output(1, 60, 60, [])))
    assert result.passed and result.detail == "60 invoice numbers, 1..60, none missing"
    assert agent.calls[0][0][-1] == gaps_query("invoices", "no")
    result, _ = run_one(tmp_path, probe, lambda argv: ok(gaps_output(1, 70, 50, [(17, 17), (42, 60)])))
    assert not result.passed
    assert result.detail == "missing invoice numbers: 17, 42..60 (20 missing of 1..70)"


def test_sequence_gaps_from_a_start_and_on_an_empty_table(tmp_path) -> None:
    probe = {"kind": "sequence_gaps", "table": "invoices", "column": "no", "start": 1}
    result, _ = run_one(tmp_path, probe, lambda argv: ok(gaps_output(5, 9, 5, [])))
    assert not result.passed and result.detail == "missing invoices.no values: 1..4 (4 missing of 1..9)"
    result, _ = run_one(tmp_path, probe, lambda argv: ok("range\t\t\t0\n"))
    assert not result.passed and result.detail == "no invoices.no values at all (the table is empty)"


# freshness ---------------------------------------------------------------

def epoch(moment: datetime) -> str:
    return f"{moment.timestamp():.6f}\n"


def test_freshness_rpo_is_the_point_minus_the_newest_value(tmp_path) -> None:
    probe = {"kind": "freshness", "table": "invoices", "column": "created_at", "within": "2h"}
    newest = POINT - timedelta(hours=1, minutes=15)
    result, agent = run_one(tmp_path, probe, lambda argv: ok(epoch(newest)))
    assert result.passed
    assert result.detail == ("newest invoices.created_at 2026-11-20T08:15Z, 1h15m before the lab's point in time "
                             "2026-11-20T09:30Z: RPO 1h15m (allowed 2h)")
    assert agent.calls[0][0][-1] == "SELECT extract(epoch FROM max(created_at)) FROM invoices"
    result, _ = run_one(tmp_path, probe, lambda argv: ok(epoch(POINT - timedelta(hours=2, seconds=1))))
    assert not result.passed
    assert result.detail.endswith(": RPO 2h1s, more than the allowed 2h")
    result, _ = run_one(tmp_path, probe, lambda argv: ok(epoch(POINT - timedelta(hours=3, minutes=30))))
    assert not result.passed
    assert result.detail.endswith(": RPO 3h30m, more than the allowed 2h")


def test_freshness_math_and_edges() -> None:
    within = timedelta(hours=2)
    passed, detail = judge_freshness(epoch(POINT - timedelta(hours=2)), "t.c", within, POINT)
    assert passed and "RPO 2h " in detail                       # exactly the window passes
    passed, detail = judge_freshness("NULL\n", "t.c", within, POINT)
    assert not passed and detail == "no t.c at all (the table is empty)"
    passed, detail = judge_freshness("yesterday\n", "t.c", within, POINT)
    assert not passed and "not a timestamp" in detail
    now = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
    passed, detail = judge_freshness(epoch(now - timedelta(minutes=5)), "t.c", within, None, now=now)
    assert passed and "before now (the lab was never restored to a point)" in detail and "RPO 5m" in detail


def test_freshness_on_mariadb_uses_unix_timestamp(tmp_path) -> None:
    agent = FakeAgent(lambda argv: ok(epoch(POINT - timedelta(minutes=10))))
    probes = probe_file(tmp_path, {"name": "p", "kind": "freshness", "server": "crm", "table": "contacts",
                                   "column": "updated", "within": "30m"})
    [result] = run_probes(RECORD, ENV, probes, agent_for=lambda server: agent)
    assert result.passed and "RPO 10m" in result.detail
    assert agent.calls[0][0][-1] == "SELECT UNIX_TIMESTAMP(max(updated)) FROM contacts"


def test_durations() -> None:
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration(90) == timedelta(seconds=90)
    with pytest.raises(ValueError):
        parse_duration("2 fortnights")
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    assert format_duration(timedelta(days=2, hours=3, minutes=1)) == "2d3h1m"
    assert format_duration(timedelta(seconds=20)) == "20s"
    assert format_duration(timedelta(minutes=-5)) == "-5m"


# command -----------------------------------------------------------------

def test_command_exit_and_output(tmp_path) -> None:
    probe = {"kind": "command", "command": "systemctl is-active postgresql", "output_matches": "^active$"}
    result, agent = run_one(tmp_path, probe, lambda argv: ok("active\n"))
    assert result.passed and result.detail == "exit 0, output matches /^active$/"
    assert agent.calls[0][0] == ["sh", "-c", "systemctl is-active postgresql"]
    result, _ = run_one(tmp_path, probe, lambda argv: ok("inactive\n"))
    assert not result.passed and result.detail == "output does not match /^active$/ (last line: inactive)"
    result, _ = run_one(tmp_path, {"kind": "command", "command": ["test", "-f", "/etc/x"]},
                        lambda argv: ExecResult(1, "", ""))
    assert not result.passed and result.detail == "command exited 1: no output (expected exit 0)"
    result, agent = run_one(tmp_path, {"kind": "command", "command": ["grep", "-q", "x", "/y"],
                                       "expect_exit": [1, 2]}, lambda argv: ExecResult(1, "", ""))
    assert result.passed and agent.calls[0][0] == ["grep", "-q", "x", "/y"]


def test_a_command_that_times_out_in_the_guest(tmp_path) -> None:
    result, agent = run_one(tmp_path, {"kind": "command", "command": "sleep 600", "timeout": 5},
                            lambda argv: ExecResult(124, "", ""))
    assert not result.passed and result.detail == "did not finish within 5 s (killed)"
    assert agent.calls[0][1] == 15


# tcp ---------------------------------------------------------------------

def test_tcp_open_and_closed(tmp_path) -> None:
    result, agent = run_one(tmp_path, {"kind": "tcp", "target": "crm01.shop.test", "port": 3306},
                            lambda argv: ok())
    assert result.passed and result.detail == "crm (10.90.0.12) port 3306 is open"
    assert agent.calls[0][0][-3:] == ["10.90.0.12", "3306", "60"]
    refused = ExecResult(1, "", "bash: connect: Connection refused\nbash: line 1: /dev/tcp/10.90.0.12/3306: "
                                "Connection refused\n")
    result, _ = run_one(tmp_path, {"kind": "tcp", "target": "crm", "port": 3306}, lambda argv: refused)
    assert not result.passed
    assert result.detail == ("crm (10.90.0.12) port 3306: closed (bash: line 1: /dev/tcp/10.90.0.12/3306: "
                             "Connection refused), expected open")
    result, _ = run_one(tmp_path, {"kind": "tcp", "target": "10.90.0.12", "port": 22, "expect": "closed"},
                        lambda argv: refused)
    assert result.passed and "as expected" in result.detail
    result, _ = run_one(tmp_path, {"kind": "tcp", "target": "crm", "port": 22, "timeout": 3},
                        lambda argv: ExecResult(124, "", ""))
    assert not result.passed and result.detail == "crm (10.90.0.12) port 22: no answer (timed out), expected open"


# http --------------------------------------------------------------------

RESPONSE = "HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nServer: nginx\r\n\r\n<h1>Shop</h1>\n"


def test_parse_http() -> None:
    assert parse_http(RESPONSE) == (200, {"content-type": "text/html; charset=utf-8", "server": "nginx"},
                                    "<h1>Shop</h1>\n")
    assert parse_http("HTTP/1.1 404 Not Found\n\nnope") == (404, {}, "nope")
    assert parse_http("SSH-2.0-OpenSSH_9.2\r\n") is None


def test_http_status_body_and_header(tmp_path) -> None:
    probe = {"kind": "http", "target": "web01.shop.test", "path": "/shop", "body_matches": "<h1>Shop",
             "headers": {"Content-Type": "^text/html"}}
    result, agent = run_one(tmp_path, probe, lambda argv: ok(RESPONSE))
    assert result.passed and result.detail == "GET http://web01.shop.test:80/shop: status 200, 14 bytes"
    assert agent.calls[0][0][-5:] == ["10.90.0.13", "80", "/shop", "web01.shop.test", "60"]
    bad = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nmaintenance\n"
    result, _ = run_one(tmp_path, probe, lambda argv: ok(bad))
    assert not result.passed
    assert result.detail == ("GET http://web01.shop.test:80/shop: status 503, expected 200; header Content-Type: "
                             "'text/plain' does not match /^text/html/; body (12 bytes) does not match /<h1>Shop/")
    result, _ = run_one(tmp_path, {"kind": "http", "target": "web", "headers": {"X-Shop": "."}},
                        lambda argv: ok(RESPONSE))
    assert not result.passed and result.detail.endswith("no X-Shop header")
    result, _ = run_one(tmp_path, {"kind": "http", "target": "web", "port": 8080},
                        lambda argv: ExecResult(1, "", "bash: connect: Connection refused\n"))
    assert not result.passed and result.detail == ("GET http://web01.shop.test:8080/ (10.90.0.13) exited 1: "
                                                   "bash: connect: Connection refused")


# checksum ----------------------------------------------------------------

A, B = "a" * 64, "b" * 64


def test_checksum_manifest(tmp_path) -> None:
    probe = {"kind": "checksum", "manifest": {"/etc/shop.conf": A, "/srv/uploads/logo.png": B}}
    result, agent = run_one(tmp_path, probe, lambda argv: ok(f"{A}  /etc/shop.conf\n{B}  /srv/uploads/logo.png\n"))
    assert result.passed and result.detail == "2 files match their sha256"
    assert agent.calls[0][0] == ["sha256sum", "--", "/etc/shop.conf", "/srv/uploads/logo.png"]
    result, _ = run_one(tmp_path, probe, lambda argv: ExecResult(
        1, f"{B}  /etc/shop.conf\n", "sha256sum: /srv/uploads/logo.png: No such file or directory\n"))
    assert not result.passed
    assert result.detail == ("2 of 2 files differ: /etc/shop.conf (sha256 bbbbbbbbbbbb..., expected "
                             "aaaaaaaaaaaa...), /srv/uploads/logo.png (missing or unreadable)")


# the runner ---------------------------------------------------------------

def test_a_silent_agent_fails_its_probe_and_not_the_others(tmp_path) -> None:
    probes = probe_file(tmp_path,
                        {"name": "db-up", "kind": "command", "server": "db", "command": "true"},
                        {"name": "crm-up", "kind": "command", "server": "crm", "command": "true"})

    def respond(argv):
        return ok()

    def silent(argv):
        raise AgentError("guest agent of 'shop-1-crm' did not answer guest-exec: timed out")
    agents = {"db": FakeAgent(respond), "crm": FakeAgent(silent)}
    results = run_probes(RECORD, ENV, probes, agent_for=agents.__getitem__)
    assert [(r.name, r.passed) for r in results] == [("db-up", True), ("crm-up", False)]
    assert results[1].detail == "error: guest agent of 'shop-1-crm' did not answer guest-exec: timed out"


def test_an_unexpected_exception_is_a_failed_result(tmp_path) -> None:
    result, _ = run_one(tmp_path, {"kind": "command", "command": "true"},
                        lambda argv: (_ for _ in ()).throw(OSError("broken pipe")))
    assert not result.passed and result.detail == "error: OSError: broken pipe"


def test_probes_run_concurrently_bounded_per_server(tmp_path) -> None:
    probes = probe_file(tmp_path, *[{"name": f"p{i}", "kind": "command", "server": "db", "command": "true"}
                                    for i in range(8)],
                        {"name": "crm", "kind": "command", "server": "crm", "command": "true"})
    db, crm = FakeAgent(lambda argv: ok(), delay=0.3), FakeAgent(lambda argv: ok(), delay=0.3)
    started = time.monotonic()
    results = run_probes(RECORD, ENV, probes, agent_for={"db": db, "crm": crm}.__getitem__)
    elapsed = time.monotonic() - started
    assert all(r.passed for r in results) and [r.name for r in results] == [p.name for p in probes]
    assert db.most == 4 and 0.55 < elapsed < 1.2      # 8 on db, 4 at a time: two rounds
    assert all(0.25 < r.seconds < 1 for r in results)


def test_only_selects_by_name(tmp_path) -> None:
    probes = probe_file(tmp_path, {"name": "a", "kind": "command", "server": "db", "command": "true"},
                        {"name": "b", "kind": "command", "server": "db", "command": "true"})
    agent = FakeAgent(lambda argv: ok())
    assert [r.name for r in run_probes(RECORD, ENV, probes, only="b", agent_for=lambda s: agent)] == ["b"]
    with pytest.raises(NotFoundError, match="no probe named 'c'"):
        run_probes(RECORD, ENV, probes, only=["c"], agent_for=lambda s: agent)


def test_output_tail_keeps_the_last_20_lines(tmp_path) -> None:
    out = "".join(f"line {n}\n" for n in range(1, 31))
    result, _ = run_one(tmp_path, {"kind": "command", "command": "seq"}, lambda argv: ok(out, "warning\n"))
    lines = result.output_tail.splitlines()
    assert len(lines) == 20 and lines[0] == "line 12" and lines[-1] == "warning"


# reports -------------------------------------------------------------------

def test_reports_and_exit_code() -> None:
    import json

    from labmgr.probes.report import exit_code, summary_lines, to_json
    good = ProbeResult("count", "db", "sql", "critical", True, 0.25, "got 20", "20")
    warn = ProbeResult("fresh", "db", "freshness", "warning", False, 0.5, "RPO 3h, more than the allowed 2h", "")
    bad = ProbeResult("gaps", "db", "sequence_gaps", "critical", False, 1.0, "missing invoice numbers: 7", "x<&>")
    assert exit_code([good]) == 0 and exit_code([good, warn]) == 0 and exit_code([good, warn, bad]) == 1
    assert summary_lines([good, warn, bad]) == [
        "ok    count (db, sql, 0.2 s): got 20",
        "WARN  fresh (db, freshness, 0.5 s): RPO 3h, more than the allowed 2h",
        "FAIL  gaps (db, sequence_gaps, 1.0 s): missing invoice numbers: 7",
        "1 of 3 probes passed; 1 critical and 1 warning failures"]
    data = json.loads(to_json([good, bad], lab="shop-1", point="2026-11-20T09:30Z"))
    assert data["passed"] is False and data["results"][1]["detail"] == "missing invoice numbers: 7"


# compare_previous ------------------------------------------------------------

def test_compare_previous_against_the_latest_earlier_point_in_history(tmp_path) -> None:
    """Values go into the catalog's history with each run; any lab of the environment counts."""
    from labmgr.history import History
    from labmgr.timeparse import parse_point
    probes = probe_file(tmp_path, {"name": "count", "kind": "compare_previous", "server": "db",
                                   "query": "SELECT count(*) FROM invoices", "max_drop": "10%"})
    value = {"now": "100"}
    agent = FakeAgent(lambda argv: ok(value["now"] + "\n"))

    def run_at(at: str, lab: str = "shop-1"):
        record = SimpleNamespace(name=lab, hypervisor="test:///default", point={"at": at})
        with History(tmp_path / "store") as history:
            previous = history.previous_values("shop", ["count"], parse_point(at))
            [result] = run_probes(record, ENV, probes, agent_for=lambda server: agent, previous=previous)
            history.record_probe_run(lab, "shop", at, at, at, 0 if result.passed else 1, [result])
        return result
    first = run_at("2026-11-20T08:30Z")
    assert first.passed and first.detail == "got 100; no earlier point to compare with (recorded for the next run)"
    assert first.value == "100"
    assert agent.calls[0][0][-1] == "SELECT count(*) FROM invoices"
    value["now"] = "120"
    assert run_at("2026-11-20T09:30Z", lab="shop-2").detail == "100 at 2026-11-20T08:30Z -> 120: +20 (+20.0%)"
    value["now"] = "95"      # compared with 08:30 (the latest point before 09:00), not with 09:30
    assert run_at("2026-11-20T09:00Z").detail == "100 at 2026-11-20T08:30Z -> 95: -5 (-5.0%)"
    value["now"] = "80"
    result = run_at("2026-11-20T10:30Z")
    assert not result.passed
    assert result.detail == "120 at 2026-11-20T09:30Z -> 80: -40 (-33.3%), dropped more than the allowed 10%"
    with History(tmp_path / "store") as history:
        assert history.previous_values("shop", ["count"], parse_point("2026-11-21T00:00Z")) == \
            {"count": ("2026-11-20T10:30Z", "80")}
        assert history.previous_values("other-env", ["count"], parse_point("2026-11-21T00:00Z")) == {}


def test_compare_previous_limits_and_non_numbers() -> None:
    from labmgr.probes.checks import judge_change
    assert judge_change("7\n", ("t0", "10"), 0, None)[:2] == (False, "10 at t0 -> 7: -3 (-30.0%), dropped more "
                                                                     "than the allowed 0")
    assert judge_change("10\n", ("t0", "10"), 0, None)[:2] == (True, "10 at t0 -> 10: +0 (+0.0%)")
    assert judge_change("16\n", ("t0", "10"), 0, "50%")[0] is False
    assert judge_change("15\n", ("t0", "10"), 0, "50%")[0] is True
    assert judge_change("12\n", ("t0", "10"), 0, 1)[1].endswith("grew more than the allowed 1")
    assert judge_change("a\tb\n", None, 0, None) == (False, "got 'a\tb', not a single number", None)


# isolation -------------------------------------------------------------------

def test_isolation_from_every_server_with_gateways_and_peers(tmp_path) -> None:
    env = Environment.model_validate({**ENV.model_dump(mode="json"), "networks": [
        {"name": "lan", "cidr": "10.90.0.0/24", "gateway": "10.90.0.1"}]})
    path = write(tmp_path, [{"name": "iso", "kind": "isolation", "targets": ["203.0.113.9:443", "prod-db.example"]}])
    probes = load_probes(path, env)
    assert [(p.name, p.server) for p in probes] == [("iso", "db"), ("iso", "crm"), ("iso", "web")]
    answers = {"10.90.0.12": "ping", "10.90.0.13": "ping", "10.90.0.11": "ping"}

    def respond(argv):
        seconds, *targets = argv[argv.index("probe") + 1:]
        assert seconds == "3"
        return ok("".join(f"answers {t} {answers[t]}\n" if t in answers else f"silent {t}\n" for t in targets))
    agent = FakeAgent(respond)
    results = run_probes(RECORD, env, probes, agent_for=lambda server: agent)
    assert all(r.passed for r in results), [r.detail for r in results]
    assert results[0].detail == ("isolated: from db, 5 outside addresses silent (203.0.113.9:443, prod-db.example, "
                                 "10.90.0.1, 10.90.0.1:22, 10.90.0.1:443); 2 lab peers answer "
                                 "(crm 10.90.0.12, web 10.90.0.13)")
    answers["10.90.0.1:22"] = "refused"          # something holds production's gateway address
    del answers["10.90.0.13"]                   # and web is deaf
    db, crm, web = run_probes(RECORD, env, probes, agent_for=lambda server: agent)
    assert db.detail == "not isolated: from db, production gateway of lan 10.90.0.1:22 answers (refused)"
    assert not web.passed and not crm.passed
    answers["10.90.0.1:22"] = None
    del answers["10.90.0.1:22"]
    db, crm, web = run_probes(RECORD, env, probes, agent_for=lambda server: agent)
    assert not db.passed and db.detail == "from db, lab peer web (10.90.0.13) does not answer"
    assert web.passed and web.detail.startswith("isolated: from web,")
    [only_db] = load_probes(write(tmp_path, [{"name": "iso", "kind": "isolation", "server": "db",
                                              "gateways": False, "peers": False, "targets": ["10.0.0.1:22"]}]), env)
    result, _ = run_one(tmp_path, {"kind": "isolation", "gateways": False, "peers": False, "targets": ["10.0.0.1:22"]},
                        lambda argv: ok("answers 10.0.0.1:22 connected\n"))
    assert not result.passed and result.detail == "not isolated: from db, outside address 10.0.0.1:22 answers (connected)"
    result, _ = run_one(tmp_path, {"kind": "isolation", "gateways": False, "peers": False,
                                   "targets": ["10.0.0.1:22", "10.0.0.2"]}, lambda argv: ok("silent 10.0.0.1:22\n"))
    assert not result.passed and result.detail == "could not try 10.0.0.2"
    assert only_db.server == "db"


def test_isolation_counts_the_resolver_address_as_the_labs_door_not_outside(tmp_path) -> None:
    """With ``dns:``, production's resolver address is the lab door in the lab: it must answer DNS
    there (port 53), and a target naming it is not an outside address that leaks."""
    env = Environment.model_validate({**ENV.model_dump(mode="json"), "networks": [
        {"name": "lan", "cidr": "10.90.0.0/24", "gateway": "10.90.0.1", "dns": "10.90.0.53"}]})
    spec = {"kind": "isolation", "server": "db", "peers": False, "targets": ["10.90.0.53:53", "10.90.0.53", "8.8.8.8"]}
    [probe] = load_probes(write(tmp_path, [{"name": "iso", **spec}]), env)
    outside, peers = isolation_addresses(probe, env)
    assert "10.90.0.53:53" not in outside and "10.90.0.53" not in outside and "8.8.8.8" in outside
    assert peers == {"10.90.0.53:53": "lab DNS of lan (the lab's door)"}

    def run(output: str) -> ProbeResult:
        [result] = run_probes(RECORD, env, [probe], agent_for=lambda server: FakeAgent(lambda argv: ok(output)))
        return result
    result = run("answers 10.90.0.53:53 connected\n" + "".join(f"silent {t}\n" for t in outside))
    assert result.passed and "lab DNS of lan (the lab's door) 10.90.0.53:53" in result.detail, result.detail
    result = run("".join(f"silent {t}\n" for t in [*outside, *peers]))
    assert not result.passed and "lab DNS of lan (the lab's door) (10.90.0.53:53) does not answer" in result.detail


@pytest.mark.parametrize("text, expected", [
    ("probes:\n  - {name: a, kind: isolation, server: db, targets: ['10.0.0.1:99999']}\n",
     ":2: probes[0].targets: '10.0.0.1:99999' is neither a host nor host:port"),
    ("probes:\n  - {name: a, kind: isolation, server: db, timeout: 5, connect_timeout: 3, targets: ['10.0.0.1']}\n",
     ":2: probes[0]: timeout 5 s is too short for connect_timeout 3 s: make it at least 8 s"),
    ("probes:\n  - {name: a, kind: isolation, server: nope}\n",
     ":2: probes[0].server: unknown server 'nope'"),
    ("probes:\n  - {name: a, kind: isolation, server: db, peers: false}\n",
     ":2: probes[0]: isolation probe 'a' has nothing to check from server db"),
    ("probes:\n  - {name: a, kind: compare_previous, server: db, query: x, max_drop: lots}\n",
     ":2: probes[0].max_drop: 'lots' is neither a number nor a percentage"),
    ("probes:\n  - {name: a, kind: compare_previous, server: web, query: x}\n",
     ":2: probes[0].server: query on a server with no database"),
])
def test_load_errors_of_the_later_kinds(tmp_path, text, expected) -> None:
    assert load_error(tmp_path, text).startswith(expected)
