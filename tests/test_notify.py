"""labmgr.notify: heartbeat pings, failure webhook, JUnit XML, Prometheus textfile.

HTTP goes only to a server this module starts on 127.0.0.1; nothing leaves the host.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from labmgr.progress import SILENT
from labmgr.notify import (ProbeResult, RunSummary, announce, ping_fail, ping_start,
                           ping_success, post_failure, write_junit, write_textfile)
from labmgr.notify import prometheus as prom

from helpers import recording_http_server

pytestmark = pytest.mark.timeout(120)

XSD = Path(__file__).parent / "data" / "junit.xsd"
T0 = datetime(2026, 11, 21, 9, 0, 0, tzinfo=timezone.utc)
SECRET = "s3cret-Pa55"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """urllib honours *_proxy variables; make sure test traffic stays on 127.0.0.1."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch):
    """Retries still happen, counted below; only the pause between them is shorter."""
    from labmgr.notify import _http
    monkeypatch.setattr(_http, "BACKOFF", 0.02)


@pytest.fixture
def http():
    with recording_http_server() as server:
        yield server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the with block ends


# summaries ----------------------------------------------------------------------
def probe(name="pg-rowcount", server="db", passed=True, severity="critical", **extra):
    values = dict(name=name, server=server, kind="sql", severity=severity, passed=passed,
                  seconds=1.25, detail="orders: 1204 rows" if passed else "orders: 0 rows",
                  output_tail="")
    values.update(extra)
    return ProbeResult(**values)


def summary(exit_code=0, results=None, error="", environment="shop", **extra):
    if results is None:
        results = [probe(), probe("http-home", "app", kind="http")]
    values = dict(environment=environment, lab="shop-lab-0900", point="2026-11-21T08:00Z",
                  started_at=T0, finished_at=T0 + timedelta(minutes=7, seconds=3.5),
                  stages={"capture": 12.0, "clone": 30.5, "boot": 95.25, "inject": 4.0,
                          "restore": 210.0, "probes": 8.75},
                  results=results, exit_code=exit_code, error=error, rpo_seconds=3600.0)
    values.update(extra)
    return RunSummary(**values)


def failing_summary():
    return summary(1, [
        probe(),
        probe("pg-orders-recent", "db", passed=False,
              detail=f"no order newer than 08:00; dsn postgresql://app:{SECRET}@10.0.0.5/shop",
              output_tail=f"PGPASSWORD={SECRET} psql ...\n\x1b[31m(0 rows)\x1b[0m\n"),
        probe("disk-free", "app", passed=False, severity="warning", kind="command",
              detail="/var at 91 %"),
    ])


# heartbeat ----------------------------------------------------------------------
def test_pings_hit_the_healthchecks_paths(http):
    check = http.url + "/ping/5f1c0e1a-uuid"
    assert ping_start(check) is True
    assert ping_success(check) is True
    assert ping_fail(check, "probe pg-orders-recent failed") is True
    assert [(r["method"], r["path"]) for r in http.requests] == [
        ("GET", "/ping/5f1c0e1a-uuid/start"),
        ("GET", "/ping/5f1c0e1a-uuid"),
        ("POST", "/ping/5f1c0e1a-uuid/fail"),
    ]
    assert http.requests[2]["body"] == b"probe pg-orders-recent failed"
    assert http.requests[2]["content_type"].startswith("text/plain")


def test_ping_trailing_slash_and_masked_fail_body(http):
    assert ping_fail(http.url + "/abc/", f"password={SECRET} failed") is True
    request = http.requests[0]
    assert request["path"] == "/abc/fail"
    assert SECRET.encode() not in request["body"]
    assert b"password=***" in request["body"]


def test_server_errors_are_retried_then_accepted(http):
    http.statuses = [503, 500]
    assert ping_success(http.url + "/x") is True
    assert len(http.requests) == 3


def test_client_error_is_not_retried_and_reported_without_the_url(http):
    http.statuses = [404]
    errors: list[str] = []
    assert ping_success(http.url + "/secret-uuid", errors=errors) is False
    assert len(http.requests) == 1
    assert len(errors) == 1 and "404" in errors[0]
    assert "secret-uuid" not in errors[0]


def test_unreachable_heartbeat_returns_false_quickly():
    url = f"http://127.0.0.1:{closed_port()}/ping/uuid"
    errors: list[str] = []
    started = time.monotonic()
    assert ping_start(url, errors=errors) is False
    assert ping_fail(url, "x") is False
    elapsed = time.monotonic() - started
    assert elapsed < 10  # two calls, three attempts each, short back-off: well inside one timeout
    assert errors and "127.0.0.1" in errors[0] and "uuid" not in errors[0]


def test_silent_server_times_out_without_raising():
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/uuid"
        started = time.monotonic()
        assert ping_success(url, timeout=0.5, retries=1) is False
        assert time.monotonic() - started < 5


def test_non_http_url_is_refused():
    errors: list[str] = []
    assert ping_success("file:///etc/passwd", errors=errors) is False
    assert "http" in errors[0]
    assert ping_success("") is False


@pytest.mark.parametrize("text, masked", [
    ("PGPASSWORD=abc psql -h db", "PGPASSWORD=*** psql -h db"),
    ("mysql://root:pw@db/shop", "mysql://root:***@db/shop"),
    ('api_key: "a b" x', "api_key: *** x"),
    ("probes passed: 3, tokens: 5", "probes passed: 3, tokens: 5"),
])
def test_scrub(text, masked):
    from labmgr.notify._http import scrub

    assert scrub(text) == masked


# webhook ------------------------------------------------------------------------
def test_webhook_carries_the_fields_and_no_secrets(http):
    run = failing_summary()
    assert post_failure(http.url + "/hooks/T000/B000/XXXX", run) is True
    (request,) = http.requests
    assert request["method"] == "POST" and request["path"] == "/hooks/T000/B000/XXXX"
    assert request["content_type"] == "application/json"
    payload = json.loads(request["body"])
    assert payload["environment"] == "shop"
    assert payload["lab"] == "shop-lab-0900"
    assert payload["point"] == "2026-11-21T08:00Z"
    assert payload["exit_code"] == 1
    assert payload["error"] == ""
    assert payload["started_at"] == "2026-11-21T09:00:00Z"
    assert payload["finished_at"] == "2026-11-21T09:07:03Z"
    assert payload["stages"]["restore"] == 210.0 and set(payload["stages"]) == set(run.stages)
    assert [(p["name"], p["server"]) for p in payload["failed_probes"]] == [
        ("pg-orders-recent", "db"), ("disk-free", "app")]
    assert all("detail" in p for p in payload["failed_probes"])
    assert "FAILED" in payload["text"]
    raw = request["body"].decode()
    assert SECRET not in raw
    assert "PGPASSWORD" not in raw  # output tails are never sent
    assert "app:***@10.0.0.5" in raw


def test_webhook_for_a_lab_that_could_not_run(http):
    run = summary(2, [], error="boot of db timed out after 600 s")
    assert post_failure(http.url + "/hook", run) is True
    payload = json.loads(http.requests[0]["body"])
    assert payload["exit_code"] == 2 and payload["failed_probes"] == []
    assert payload["error"] == "boot of db timed out after 600 s"


def test_webhook_unreachable_does_not_raise():
    errors: list[str] = []
    assert post_failure(f"http://127.0.0.1:{closed_port()}/hook", failing_summary(),
                        errors=errors) is False
    assert errors and errors[0].startswith("webhook:")


# JUnit --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def schema():
    return etree.XMLSchema(etree.parse(str(XSD)))


def read_junit(path: Path, schema) -> etree._Element:
    document = etree.parse(str(path))
    schema.assertValid(document)
    return document.getroot()


def test_junit_all_passed(tmp_path, schema):
    root = read_junit(write_junit(tmp_path / "junit.xml", summary()), schema)
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "labmgr.shop"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "0")
    assert suite.get("time") == "423.500"
    assert suite.get("timestamp") == "2026-11-21T09:00:00"
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name"), c.get("time")) for c in cases] == [
        ("shop.db", "pg-rowcount", "1.250"), ("shop.app", "http-home", "1.250")]
    assert not suite.findall(".//failure") and not suite.findall(".//error")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["point"] == "2026-11-21T08:00Z" and props["stage.restore"] == "210.000"


def test_junit_failed_probes(tmp_path, schema):
    root = read_junit(write_junit(tmp_path / "junit.xml", failing_summary()), schema)
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "2", "0")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["pg-rowcount"].find("failure") is None
    critical = cases["pg-orders-recent"].find("failure")
    assert critical.get("type") == "sql"
    assert critical.get("message").startswith("no order newer than 08:00")
    warning = cases["disk-free"].find("failure")
    assert warning.get("type") == "command"
    assert "warning" in warning.get("message")
    out = cases["pg-orders-recent"].find("system-out").text
    assert "(0 rows)" in out and "\\x1b" in out  # escape characters kept visible, XML still valid
    assert SECRET not in (tmp_path / "junit.xml").read_text()  # CI artifacts are widely read


def test_junit_lab_could_not_run(tmp_path, schema):
    run = summary(2, [], error='restore failed: pg_restore exited 1 <"&">')
    root = read_junit(write_junit(tmp_path / "junit.xml", run), schema)
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "1")
    (case,) = suite.findall("testcase")
    assert case.get("name") == "lab"
    assert case.find("error").get("message") == 'restore failed: pg_restore exited 1 <"&">'


def test_junit_replaces_an_existing_file(tmp_path, schema):
    path = tmp_path / "junit.xml"
    path.write_text("stale")
    read_junit(write_junit(path, summary()), schema)
    assert [p.name for p in tmp_path.iterdir()] == ["junit.xml"]


# Prometheus ---------------------------------------------------------------------
def families(path: Path) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    parsed = {}
    for family in text_string_to_metric_families(path.read_text()):
        assert family.type == "gauge" and family.documentation
        parsed[family.name] = {tuple(sorted(s.labels.items())): s.value for s in family.samples}
    return parsed


def one(family: dict, **labels) -> float:
    wanted = set(labels.items())
    (value,) = [v for key, v in family.items() if wanted <= set(key)]
    return value


def test_textfile_parses(tmp_path):
    path = write_textfile(tmp_path / "labmgr-shop.prom", failing_summary())
    text = path.read_text()
    assert "# HELP labmgr_probe_success " in text and "# TYPE labmgr_probe_success gauge" in text
    metrics = families(path)
    success = metrics["labmgr_probe_success"]
    assert one(success, probe="pg-rowcount", server="db") == 1
    assert one(success, probe="pg-orders-recent", server="db", severity="critical") == 0
    assert one(success, probe="disk-free", severity="warning", lab="shop-lab-0900") == 0
    assert one(metrics["labmgr_probe_duration_seconds"], probe="disk-free") == 1.25
    assert one(metrics["labmgr_stage_duration_seconds"], stage="boot") == 95.25
    assert one(metrics["labmgr_drill_success"], environment="shop") == 0
    assert one(metrics["labmgr_rpo_seconds"], environment="shop") == 3600
    assert "labmgr_last_success_timestamp_seconds" not in metrics  # never succeeded yet
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_textfile_keeps_last_success_on_failure(tmp_path):
    path = tmp_path / "labmgr-shop.prom"
    good = summary()
    write_textfile(path, good)
    first = families(path)
    success_at = (T0 + timedelta(minutes=7, seconds=3.5)).timestamp()
    assert one(first["labmgr_last_success_timestamp_seconds"], environment="shop") == success_at
    assert one(first["labmgr_drill_success"]) == 1

    bad = failing_summary()
    bad.started_at += timedelta(days=1)
    bad.finished_at += timedelta(days=1)
    write_textfile(path, bad)
    second = families(path)
    assert one(second["labmgr_drill_success"]) == 0
    assert one(second["labmgr_last_success_timestamp_seconds"]) == success_at
    assert one(second["labmgr_last_run_timestamp_seconds"]) == success_at + 86400

    write_textfile(path, summary(2, [], error="lab down"))  # and again, still kept
    assert one(families(path)["labmgr_last_success_timestamp_seconds"]) == success_at


def test_textfile_escapes_label_values(tmp_path):
    odd = 'env "q"\\back\nline'
    path = tmp_path / "odd.prom"
    write_textfile(path, summary(environment=odd,
                                 results=[probe(name='say "hi"\\', server="db\n2")]))
    metrics = families(path)
    assert one(metrics["labmgr_probe_success"], environment=odd, probe='say "hi"\\',
               server="db\n2") == 1
    write_textfile(path, summary(1, [probe(passed=False)], environment=odd))
    assert prom.read_last_success(path, odd) == one(
        families(path)["labmgr_last_success_timestamp_seconds"], environment=odd)


def test_textfile_is_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / "labmgr-shop.prom"
    write_textfile(path, summary())
    before = path.read_text()
    inode = path.stat().st_ino

    # a crash in the middle of writing leaves the old file whole and no temp file behind
    real_fsync = os.fsync

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_textfile(path, failing_summary())
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["labmgr-shop.prom"]

    # a successful write swaps in a new inode (rename), never rewrites in place
    write_textfile(path, failing_summary())
    assert path.stat().st_ino != inode
    assert [p.name for p in tmp_path.iterdir()] == ["labmgr-shop.prom"]


def test_readers_never_see_a_partial_file(tmp_path):
    path = tmp_path / "labmgr-shop.prom"
    big = summary(results=[probe(f"probe-{i}", f"srv-{i % 7}") for i in range(2000)])
    write_textfile(path, big)
    stop = threading.Event()
    seen: list[int] = []

    def reader():
        while not stop.is_set():
            text = path.read_text()
            assert text.endswith("\n") and "labmgr_drill_success" in text
            seen.append(len(text))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(20):
            write_textfile(path, big)
    finally:
        stop.set()
        thread.join(10)
    assert seen and len(set(seen)) == 1


# announce -----------------------------------------------------------------------
def test_announce_success(http, tmp_path, schema):
    junit = tmp_path / "out" / "junit.xml"
    textfile = tmp_path / "prom" / "labmgr-shop.prom"
    warnings = announce(summary(), heartbeat_url=http.url + "/uuid", webhook_url=http.url + "/hook",
                        junit_path=junit, prometheus_path=textfile, reporter=SILENT)
    assert warnings == []
    assert [(r["method"], r["path"]) for r in http.requests] == [("GET", "/uuid")]  # no webhook
    read_junit(junit, schema)
    assert one(families(textfile)["labmgr_drill_success"]) == 1


def test_announce_failure(http, tmp_path):
    warnings = announce(failing_summary(), heartbeat_url=http.url + "/uuid",
                        webhook_url=http.url + "/hook", junit_path=tmp_path / "j.xml",
                        prometheus_path=None)
    assert warnings == []
    assert [(r["method"], r["path"]) for r in http.requests] == [
        ("POST", "/hook"), ("POST", "/uuid/fail")]
    body = http.requests[1]["body"].decode()
    assert "pg-orders-recent on db" in body and SECRET not in body


def test_announce_collects_warnings_instead_of_raising(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    dead = f"http://127.0.0.1:{closed_port()}"
    warnings = announce(failing_summary(), heartbeat_url=dead + "/uuid", webhook_url=dead + "/hook",
                        junit_path=blocker / "junit.xml", prometheus_path=blocker / "x.prom")
    assert len(warnings) == 4
    assert [w.split()[0] for w in warnings] == ["JUnit", "Prometheus", "webhook:", "heartbeat"]
    assert not any("/uuid" in w or "/hook" in w for w in warnings)
