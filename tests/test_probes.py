"""Probes against a real lab: PostgreSQL data restored from hourly dumps, checked in the guest.

A production VM (the db test image) writes invoices hour by hour and its dumps
are collected after each hour; before the third collection invoice 7 is
deleted. A lab restored to a good hour passes every probe; restored to the
third hour's dump its sequence_gaps probe names invoice 7, and restored to a
point long after the newest dump its freshness probe fails with the RPO.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from lxml import etree

from labmgr import paths
from labmgr.demo import production as prod
from labmgr.hypervisor.agent import ExecResult
from labmgr.dumps.hourly import collect
from labmgr.lab import records
from labmgr.lab.probing import probe_lab
from labmgr.lab.restore import lab_restore
from labmgr.lab.teardown import lab_down
from labmgr.lab.up import lab_up
from labmgr.probes import load_probes, run_probes
from labmgr.snapshot import capture, delete_snapshot
from labmgr.spec import load_environment
from labmgr.spec.model import Environment
from labmgr.timeparse import format_point

from helpers import invoicing_spec, labmgr, psql

pytestmark = pytest.mark.libvirt
LAB = "lmt-pl"
T0 = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)
IP = "10.82.0.11"

PROBES = {"probes": [
    {"name": "invoice-count", "kind": "sql", "server": "db", "engine": "postgres", "database": "shop",
     "query": "SELECT count(*) FROM invoices", "expect": {"at_least": 20}},
    {"name": "invoice-numbers", "kind": "sequence_gaps", "server": "db", "table": "invoices", "column": "no",
     "start": 1, "what": "invoice numbers"},
    {"name": "invoices-fresh", "kind": "freshness", "server": "db", "table": "invoices", "column": "created_at",
     "within": "1h"},
    {"name": "postgres-ready", "kind": "command", "server": "db", "command": "pg_isready -q && echo ready",
     "output_matches": "^ready$", "timeout": 30},
    {"name": "sleepy", "kind": "command", "server": "db", "command": ["sleep", "120"], "timeout": 3,
     "severity": "warning"},
    {"name": "listening-port", "kind": "tcp", "server": "db", "target": "db01.shop.test", "port": 8082},
    {"name": "closed-port", "kind": "tcp", "server": "db", "target": IP, "port": 8081, "expect": "closed",
     "timeout": 10},
    {"name": "invoice-growth", "kind": "compare_previous", "server": "db", "query": "SELECT count(*) FROM invoices"},
    {"name": "config", "kind": "checksum", "server": "db",
     "manifest": {"/etc/lmt-probe.conf": hashlib.sha256(b"shop\n").hexdigest()}},
    {"name": "web-page", "kind": "http", "server": "db", "target": "db", "port": 8080, "path": "/health",
     "body_matches": "shop ok", "headers": {"Content-Type": "^text/plain"}, "timeout": 15},
    {"name": "version-footer", "kind": "http", "server": "db", "target": "web01.shop.test", "path": "/",
     "body_matches": r"<footer>shop v1\.4\.2</footer>", "headers": {"Content-Type": "^text/html"}, "timeout": 15},
    {"name": "isolated", "kind": "isolation", "timeout": 30},
]}

# a one-line HTTP server made of netcat (the image has no curl, wget or python3), one connection at a
# time on 8080; and a plain listener on 8082 that stays open (for the tcp probe: no race with the http one)
WEB = ("while :; do printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nshop ok\\n' "
       "| nc -l -N 8080 >/dev/null 2>&1; done")
LISTENER = "nc -lk 8082 >/dev/null 2>&1"
# production's web server: a service on web01 (in the snapshot, so every lab boots with it)
WEB_SERVICE = {
    "/usr/local/bin/shop-web": "#!/bin/sh\nwhile :; do printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/html\\r\\n"
                               "\\r\\n<html><body>Invoices<footer>shop v1.4.2</footer></body></html>\\n' "
                               "| nc -l -N 80 >/dev/null 2>&1; done\n",
    "/etc/systemd/system/shop-web.service": "[Unit]\nDescription=shop web\n[Service]\n"
                                            "ExecStart=/usr/local/bin/shop-web\n[Install]\nWantedBy=multi-user.target\n",
}


@pytest.fixture(scope="module")
def probed(hypervisor, db_image, tmp_path_factory):
    """Production with three collected hours (invoice 7 deleted before the third), a lab of it."""
    environment = prod.Production(prefix="lmt-pp", network="10.82.0.0/24", gateway="10.82.0.1", servers=[
        prod.ProdServer("db", "db01.shop.test", IP, "52:54:00:82:00:11", memory=1024),
        prod.ProdServer("web", "web01.shop.test", "10.82.0.12", "52:54:00:82:00:12")])
    prod.create(hypervisor, environment, db_image)
    try:
        web = hypervisor.domain(environment.domain_name(environment.servers[1])).agent(timeout=60)
        for path, content in WEB_SERVICE.items():
            web.run(["sh", "-c", f"cat > {path} && chmod 755 {path}"], stdin=content.encode())
        web.run(["systemctl", "enable", "--now", "shop-web.service"], timeout=60)
        agent, spec_path = invoicing_spec(hypervisor, environment, tmp_path_factory.mktemp("production"))
        env = load_environment(spec_path)
        for hour in (1, 2, 3):
            stamp = T0 + timedelta(hours=hour)
            first = (hour - 1) * 10 + 1
            psql(agent, f"INSERT INTO invoices SELECT n, '{stamp.isoformat()}' FROM generate_series({first}, "
                        f"{first + 9}) n")
            if hour == 3:
                psql(agent, "DELETE FROM invoices WHERE no = 7")
            result = collect(env, taken_at=stamp)
            assert not result.failed, result.failed
        taken = capture(env)
        try:
            record = lab_up(env, spec_path, name=LAB)
            try:
                probes_path = tmp_path_factory.mktemp("probes") / "probes.yaml"
                probes_path.write_text(yaml.safe_dump(PROBES, sort_keys=False))
                yield env, load_probes(probes_path, env), \
                    hypervisor.domain(record.servers["db"].domain).agent(timeout=60), probes_path
            finally:
                lab_down(LAB, hypervisor_uri="qemu:///system")
        finally:
            delete_snapshot(env.name, taken.id)
            with contextlib.suppress(OSError):       # the environment's now empty snapshot directory
                (paths.snapshots_dir() / env.name).rmdir()
    finally:
        prod.remove(hypervisor, environment)


def restored(at: datetime):
    lab_restore(LAB, format_point(at))
    return records.load(LAB)


def by_name(results):
    return {r.name: r for r in results}


def test_a_good_hour_passes_and_a_stuck_probe_is_killed(probed) -> None:
    env, probes, agent, probes_path = probed
    restored(T0 + timedelta(hours=2, minutes=30))
    # a web server on the lab's own address (the lab's isolated bridge), for the tcp and http probes
    for server in (WEB, LISTENER):
        agent.run(["sh", "-c", f"setsid sh -c \"{server}\" </dev/null >/dev/null 2>&1 &"])
    deadline = time.monotonic() + 20
    for port in ("8082", "8080"):
        while agent.exec(["nc", "-z", IP, port]).exit_code != 0:
            assert time.monotonic() < deadline, f"the netcat server on port {port} did not start"
            time.sleep(0.5)
    agent.run(["sh", "-c", "echo shop > /etc/lmt-probe.conf"])
    started = time.monotonic()
    summary = probe_lab(LAB, probes_path)          # as `labmgr probe` does: results go into the history
    results = by_name(summary.results)
    assert time.monotonic() - started < 40        # concurrently: the 3 s sleeper does not hold the others
    for name in ("invoice-count", "invoice-numbers", "invoices-fresh", "postgres-ready", "listening-port",
                 "closed-port", "web-page", "version-footer", "invoice-growth", "config"):
        assert results[name].passed, (name, results[name].detail, results[name].output_tail)
    assert results["version-footer"].detail.startswith("GET http://web01.shop.test:80/: status 200")
    isolation = [r for r in summary.results if r.kind == "isolation"]
    assert [(r.server, r.passed) for r in isolation] == [("db", True), ("web", True)], isolation
    assert isolation[0].detail == ("isolated: from db, 3 outside addresses silent (10.82.0.1, 10.82.0.1:22, "
                                   "10.82.0.1:443); 1 lab peers answer (web 10.82.0.12)")
    assert results["invoice-count"].detail == "got 20"
    assert results["invoice-numbers"].detail == "20 invoice numbers, 1..20, none missing"
    assert "RPO 30m" in results["invoices-fresh"].detail
    sleepy = results["sleepy"]
    assert not sleepy.passed and "did not finish within 3 s" in sleepy.detail and sleepy.seconds < 15
    assert sleepy.severity == "warning"
    assert agent.exec(["pgrep", "-x", "sleep"]).exit_code == 1          # killed in the guest too


def junit_valid(path) -> etree._Element:
    schema = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "data" / "junit.xsd")))
    document = etree.parse(str(path))
    assert schema.validate(document), schema.error_log
    return document.getroot()


def test_the_probe_command_exit_codes_and_files(probed, tmp_path) -> None:
    """The lab at 08:30 (good), then at 10:30 (invoice 7 lost)."""
    _, _, _, probes_path = probed
    restored(T0 + timedelta(hours=2, minutes=30))         # its own starting point, whatever ran before
    good = labmgr("probe", LAB, "--probes", str(probes_path), "--only", "invoice-numbers", "--only",
                  "invoices-fresh", "--junit", str(tmp_path / "good.xml"), "--json", str(tmp_path / "good.json"))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "2 of 2 probes passed" in good.stdout
    assert junit_valid(tmp_path / "good.xml").find(".//failure") is None
    assert json.loads((tmp_path / "good.json").read_text())["passed"] is True
    restored(T0 + timedelta(hours=4, minutes=30))
    bad = labmgr("probe", LAB, "--probes", str(probes_path), "--only", "invoice-numbers",
                 "--junit", str(tmp_path / "bad.xml"))
    assert bad.returncode == 1 and "FAIL  invoice-numbers" in bad.stdout and "missing invoice numbers: 7" in bad.stdout
    failure = junit_valid(tmp_path / "bad.xml").find(".//failure")
    assert failure is not None and "7" in failure.get("message")
    missing = labmgr("probe", "lmt-no-such-lab", "--probes", str(probes_path))
    assert missing.returncode == 2 and "no lab named" in missing.stderr


def test_mutate_changes_the_version_the_page_shows_and_the_footer_probe_notices(probed, hypervisor, tmp_path) -> None:
    """--mutate on the http probe: the web server stopped, then the version its page shows changed in the
    file the service reads (and the service restarted); both caught, and the lab back as it was."""
    _, _, _, probes_path = probed
    result = labmgr("probe", LAB, "--probes", str(probes_path), "--mutate", "--only", "version-footer",
                    "--json", str(tmp_path / "mutate.json"), timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    score = json.loads((tmp_path / "mutate.json").read_text())
    caught = {d["damage"]: d["caught_by"] for d in score["damages"]}
    assert caught == {"the web server on web01.shop.test port 80 is stopped": ["version-footer"],
                      "the version 1.4.2 the page of web01.shop.test shows is changed": ["version-footer"]}
    assert (score["caught"], score["applied"]) == (2, 2) and score["baseline"] == score["after"]
    web = hypervisor.domain(records.load(LAB).servers["web"].domain).agent(timeout=60)
    assert "labmgr-mutation" not in web.run(["cat", "/usr/local/bin/shop-web"])    # reverted with the lab


def test_a_deleted_invoice_and_an_old_dump_fail(probed) -> None:
    """compare_previous compares with the value read at 08:30 (kept in the history); a restore reverts the guest."""
    _, _, agent, probes_path = probed
    # its own starting point, whatever ran before: the count read at 08:30, a file the next restore must remove
    restored(T0 + timedelta(hours=2, minutes=30))
    probe_lab(LAB, probes_path, only=["invoice-growth"])
    agent.run(["sh", "-c", "echo shop > /etc/lmt-probe.conf"])
    # the newest dump at 10:30 is 09:00's: invoice 7 is missing and the data is 1h30m old
    record = restored(T0 + timedelta(hours=4, minutes=30))
    assert record.point["dumps"]["db/invoices"] == format_point(T0 + timedelta(hours=3))
    chosen = ["invoice-count", "invoice-numbers", "invoices-fresh", "invoice-growth", "config"]
    results = by_name(probe_lab(LAB, probes_path, only=chosen).results)
    assert set(results) == set(chosen)
    # compared with the count read at the earlier point (08:30)
    assert results["invoice-growth"].passed
    assert results["invoice-growth"].detail == "20 at 2026-11-20T08:30Z -> 29: +9 (+45.0%)"
    # the restore reverted the guest: the file written at 08:30 is gone
    assert not results["config"].passed
    assert results["config"].detail == "1 of 1 files differ: /etc/lmt-probe.conf (missing or unreadable)"
    assert results["invoice-count"].passed and results["invoice-count"].detail == "got 29"
    gaps = results["invoice-numbers"]
    assert not gaps.passed
    assert gaps.detail == "missing invoice numbers: 7 (1 missing of 1..30)"
    fresh = results["invoices-fresh"]
    assert not fresh.passed
    assert "RPO 1h30m" in fresh.detail and "more than the allowed 1h" in fresh.detail


# The same database probes on this machine's test PostgreSQL and MariaDB (tests/dbservers.py), through an
# "agent" that runs the guest command line here: the gap and freshness queries on both real engines.

class HostAgent:
    def __init__(self, postgres, mariadb) -> None:
        self.env = {**os.environ, **postgres.env, **mariadb.env}

    def exec(self, argv, timeout=None, stdin=None, env=None) -> ExecResult:
        assert argv[:3] == ["timeout", "-k", "5"] and argv[4] in ("runuser", "mariadb"), argv
        done = subprocess.run(argv, input=stdin, capture_output=True, env=self.env, timeout=timeout)
        return ExecResult(done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.fixture
def host_databases(postgres_server, mariadb_server):
    postgres_server.psql("CREATE DATABASE lmt_probes")
    postgres_server.psql("CREATE TABLE invoices (no integer PRIMARY KEY, created_at timestamptz NOT NULL)",
                         database="lmt_probes")
    mariadb_server.sql("CREATE DATABASE lmt_probes; CREATE TABLE lmt_probes.orders "
                       "(id int PRIMARY KEY, placed TIMESTAMP NOT NULL)")
    yield postgres_server, mariadb_server
    postgres_server.psql("DROP DATABASE lmt_probes")
    mariadb_server.sql("DROP DATABASE lmt_probes")


def test_gap_and_freshness_queries_on_real_postgres_and_mariadb(host_databases, tmp_path) -> None:
    postgres, mariadb = host_databases
    newest = T0 + timedelta(hours=2)
    postgres.psql(f"INSERT INTO invoices SELECT n, '{newest.isoformat()}'::timestamptz - (60 - n) * interval '1 min' "
                  "FROM generate_series(1, 60) n WHERE n NOT IN (7, 42, 43, 44)", database="lmt_probes")
    mariadb.sql(f"INSERT INTO orders SELECT seq, FROM_UNIXTIME({newest.timestamp():.0f} - (30 - seq) * 60) "
                "FROM seq_1_to_30 WHERE seq <> 12", database="lmt_probes")
    env = Environment.model_validate({
        "name": "lmt-ph", "networks": [{"name": "lan", "cidr": "10.82.0.0/24"}],
        "servers": [{"name": "db", "hostname": "db01.shop.test", "domain": "lmt-ph-db",
                     "nics": [{"network": "lan", "ip": IP, "mac": "52:54:00:82:00:11"}],
                     "dumps": [{"name": "pg", "kind": "postgres", "database": "lmt_probes"},
                               {"name": "maria", "kind": "mariadb", "database": "lmt_probes"}]}]})
    path = tmp_path / "probes.yaml"
    path.write_text(yaml.safe_dump({"probes": [
        {"name": "pg-gaps", "kind": "sequence_gaps", "server": "db", "engine": "postgres", "table": "invoices",
         "column": "no", "what": "invoice numbers"},
        {"name": "maria-gaps", "kind": "sequence_gaps", "server": "db", "engine": "mariadb", "table": "orders",
         "column": "id"},
        {"name": "pg-fresh", "kind": "freshness", "server": "db", "engine": "postgres", "table": "invoices",
         "column": "created_at", "within": "1h"},
        {"name": "maria-fresh", "kind": "freshness", "server": "db", "engine": "mariadb", "table": "orders",
         "column": "placed", "within": "20m"},
        {"name": "maria-count", "kind": "sql", "server": "db", "engine": "mariadb",
         "query": "SELECT count(*), max(id) FROM orders", "expect": {"matches": "^29\t30$"}},
        {"name": "pg-rows", "kind": "sql", "server": "db", "engine": "postgres",
         "query": "SELECT no, created_at FROM invoices ORDER BY no LIMIT 3", "expect": {"rows": 3}},
    ]}))
    probes = load_probes(path, env)
    record = types_record(at=newest + timedelta(minutes=30))
    agent = HostAgent(postgres, mariadb)
    results = by_name(run_probes(record, env, probes, agent_for=lambda server: agent))
    assert results["pg-gaps"].detail == "missing invoice numbers: 7, 42..44 (4 missing of 1..60)"
    assert results["maria-gaps"].detail == "missing orders.id values: 12 (1 missing of 1..30)"
    assert results["pg-fresh"].passed and "RPO 30m" in results["pg-fresh"].detail
    assert not results["maria-fresh"].passed
    assert results["maria-fresh"].detail.endswith("RPO 30m, more than the allowed 20m")
    assert results["maria-count"].passed, results["maria-count"].detail
    assert results["pg-rows"].passed, results["pg-rows"].detail


def types_record(at: datetime):
    from types import SimpleNamespace
    return SimpleNamespace(name="lmt-ph", hypervisor="qemu:///system", point={"at": format_point(at)})


# The shell of the tcp, http and isolation probes, run on this machine against 127.0.0.1 only.

class LocalAgent:
    def exec(self, argv, timeout=None, stdin=None, env=None) -> ExecResult:
        assert argv[:3] == ["timeout", "-k", "5"] and argv[4] == "sh", argv
        done = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
        return ExecResult(done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.fixture
def local_web():
    """An HTTP server on 127.0.0.1 (a free port), and a port nobody listens on."""
    import http.server
    import socket
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"path {self.path} host {self.headers['Host']}\n".encode()
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    yield server.server_address[1], closed
    server.shutdown()
    server.server_close()


class NamespaceAgent:
    """Runs the probe's shell in a network namespace of the test's own that has only loopback."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def exec(self, argv, timeout=None, stdin=None, env=None) -> ExecResult:
        done = subprocess.run(["ip", "netns", "exec", self.namespace, *argv], input=stdin, capture_output=True,
                              timeout=timeout)
        return ExecResult(done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.fixture
def loopback_only_namespace():
    name = "lmt-iso"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=True)


def test_isolation_shell_tells_silence_from_answers(loopback_only_namespace, tmp_path) -> None:
    """In a namespace with only loopback: 10.99.0.0/24 (the "gateway" and a production address) is
    unreachable, so silent; 127.0.0.2 (the "peer") answers ping; a closed port on 127.0.0.1 answers
    with a refusal, which is an answer too."""
    env = Environment.model_validate({
        "name": "lmt-lo", "networks": [{"name": "lo", "cidr": "127.0.0.0/8", "gateway": "127.0.0.1"}],
        "servers": [{"name": "web", "hostname": "web01.shop.test", "domain": "lmt-lo-web",
                     "nics": [{"network": "lo", "ip": "127.0.0.3", "mac": "52:54:00:82:00:99"}]},
                    {"name": "peer", "hostname": "peer01.shop.test", "domain": "lmt-lo-peer",
                     "nics": [{"network": "lo", "ip": "127.0.0.2", "mac": "52:54:00:82:00:98"}]}]})
    isolated = {"name": "isolated", "kind": "isolation", "server": "web", "gateways": False,
                "targets": ["10.99.0.1", "10.99.0.1:22"]}
    leaky = {"name": "leaky", "kind": "isolation", "server": "web", "peers": False}     # the gateway answers
    path = tmp_path / "probes.yaml"
    path.write_text(yaml.safe_dump({"probes": [isolated, leaky]}))
    agent = NamespaceAgent(loopback_only_namespace)
    results = by_name(run_probes(types_record(T0), env, load_probes(path, env), agent_for=lambda s: agent))
    assert results["isolated"].passed, results["isolated"].output_tail
    assert results["isolated"].detail == ("isolated: from web, 2 outside addresses silent (10.99.0.1, "
                                          "10.99.0.1:22); 1 lab peers answer (peer 127.0.0.2)")
    # a bare host is tried with ping where the guest has it, else with a TCP connect to port 22
    bare = "ping" if shutil.which("ping") else "refused"
    assert results["leaky"].detail == (f"not isolated: from web, production gateway of lo 127.0.0.1 answers ({bare}), "
                                       "production gateway of lo 127.0.0.1:22 answers (refused), "
                                       "production gateway of lo 127.0.0.1:443 answers (refused)")


def test_tcp_http_and_isolation_shell_on_loopback(local_web, tmp_path) -> None:
    port, closed = local_web
    env = Environment.model_validate({
        "name": "lmt-lo", "networks": [{"name": "lo", "cidr": "127.0.0.0/8"}],
        "servers": [{"name": "web", "hostname": "web01.shop.test", "domain": "lmt-lo-web",
                     "nics": [{"network": "lo", "ip": "127.0.0.1", "mac": "52:54:00:82:00:99"}]}]})
    path = tmp_path / "probes.yaml"
    path.write_text(yaml.safe_dump({"probes": [
        {"name": "open", "kind": "tcp", "server": "web", "target": "web", "port": port},
        {"name": "closed", "kind": "tcp", "server": "web", "target": "127.0.0.1", "port": closed,
         "expect": "closed"},
        {"name": "health", "kind": "http", "server": "web", "target": "web01.shop.test", "port": port,
         "path": "/health", "body_matches": "^path /health host web01.shop.test",
         "headers": {"content-type": "^text/plain$"}},
        {"name": "missing", "kind": "http", "server": "web", "target": "web", "port": port, "path": "/nope"},
        {"name": "leaky", "kind": "isolation", "server": "web", "targets": [f"127.0.0.1:{port}"]},
    ]}))
    results = by_name(run_probes(types_record(T0), env, load_probes(path, env), agent_for=lambda s: LocalAgent()))
    for name in ("open", "closed", "health"):
        assert results[name].passed, (name, results[name].detail, results[name].output_tail)
    assert results["missing"].detail == f"GET http://web01.shop.test:{port}/nope: status 404, expected 200"
    assert results["leaky"].detail == f"not isolated: from web, outside address 127.0.0.1:{port} answers (connected)"
