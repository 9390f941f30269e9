"""`labmgr run`: whole drills, unattended, telling a heartbeat and a webhook on 127.0.0.1."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from lxml import etree

from labmgr.dumps.hourly import collect
from labmgr.lab import records
from labmgr.snapshot import capture, delete_snapshot
from labmgr.spec import load_environment

from chromium import banner_in_first_screen, browser, open_report  # noqa: F401 (browser: a fixture)
from helpers import APP_DATA, labmgr, leftovers, recording_http_server

pytestmark = pytest.mark.libvirt
SESSIONS = f"{APP_DATA}/sessions"
XSD = Path(__file__).parent / "data" / "junit.xsd"


@pytest.fixture(scope="module")
def drill_env(hypervisor, production, tmp_path_factory):
    """The shared production's app server (conftest's ``production``, booted once per run) as its own
    environment lmt-run, with a files source, two collected hours and a snapshot."""
    folder = tmp_path_factory.mktemp("drill")
    spec = production.spec()
    spec["name"] = "lmt-run"
    spec["servers"] = [server for server in spec["servers"] if server["name"] == "app"]
    spec["servers"][0]["dumps"] = [{"name": "sessions", "kind": "files", "path": SESSIONS, "via": "agent"}]
    spec["dumps"] = {"store": str(folder / "store")}
    spec["objectives"] = {"rto": "2h", "rpo": "3h"}        # the two hours of dumps are 1-2 hours old
    spec_path = folder / "lmt-run.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = load_environment(spec_path)
    agent = hypervisor.domain(env.server("app").domain).agent(timeout=60)
    agent.run(["rm", "-rf", APP_DATA])          # whatever a run before left there
    now = datetime.now(timezone.utc)
    for hours_ago in (2, 1):
        agent.run(["sh", "-c", f"mkdir -p {SESSIONS} && echo user > {SESSIONS}/h{hours_ago}"])
        assert not collect(env, taken_at=now - timedelta(hours=hours_ago)).failed
    taken = capture(env)
    for name, command in (("good", f"test -f {SESSIONS}/h2"), ("bad", f"test -f {SESSIONS}/gone")):
        (folder / f"{name}-probes.yaml").write_text(yaml.safe_dump({"probes": [
            {"name": "session-file", "kind": "command", "server": "app", "command": command}]}))
    yield folder
    for record in records.all_records():
        if record.environment == "lmt-run":
            labmgr("lab", "down", record.name)
    delete_snapshot(env.name, taken.id)
    agent.run(["rm", "-rf", APP_DATA])          # the shared production as the next module expects it


@pytest.fixture(scope="module")
def exits(drill_env) -> list[int]:
    """The exit code of every drill this module ran, in the order they ran (for the history's count)."""
    return []


def plan(folder: Path, name: str, server, **fields) -> Path:
    body = {"environment": "lmt-run.yaml", "probes": "good-probes.yaml", "lab_name": f"lmt-run-{name}",
            "report": {"directory": "reports", "formats": ["md", "html", "pdf"]},
            "notify": {"heartbeat_url": f"{server.url}/ping/abc", "webhook_url": f"{server.url}/hook",
                       "junit": str(folder / f"{name}.xml"), "prometheus": str(folder / f"{name}.prom")}}
    body.update(fields)
    path = folder / f"{name}.plan.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def paths_of(server) -> list[str]:
    return [r["path"] for r in server.requests]


def valid_junit(path: Path) -> etree._Element:
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    document = etree.parse(str(path))
    assert schema.validate(document), schema.error_log
    return document.getroot()


def test_a_good_drill_pings_success_and_keeps_the_lab_on_a_lease(drill_env, hypervisor, exits, browser) -> None:
    with recording_http_server() as server:
        path = plan(drill_env, "good", server, points="random 2 from the last 24 hours", keep={"lease": "1h"})
        result = labmgr("run", str(path))
        exits.append(result.returncode)
        assert result.returncode == 0, result.stdout + result.stderr
        assert paths_of(server) == ["/ping/abc/start", "/ping/abc"]          # no webhook on success
    assert "kept for people until" in result.stderr
    assert re.search(r"^RTO .* against 2h: met, .* to spare$", result.stdout, re.M), result.stdout
    assert re.search(r"^RPO 1h\b.* against 3h: met", result.stdout, re.M), result.stdout
    assert valid_junit(drill_env / "good.xml").find(".//failure") is None
    metrics = (drill_env / "good.prom").read_text()
    assert "labmgr_drill_success" in metrics and 'labmgr_objective_met{environment="lmt-run",objective="rpo"} 1.0' in metrics
    report = (drill_env / "reports" / "lmt-run-good.md").read_text()
    assert report.count("sessions @") == 2                                  # two points restored
    assert report.startswith("# DR drill report") and "> **PROVEN: 2 points in time restored" in report
    # the auditor's page of this real drill: verdict on the first screen, charts drawn, and its PDF
    seen = open_report(browser, drill_env / "reports" / "lmt-run-good.html")
    assert banner_in_first_screen(seen), seen
    assert "PROVEN: 2 points in time restored" in browser.find_element("id", "verdict").text
    assert {"chart-grid", "chart-rto"} <= {c[0] for c in seen["charts"]}, seen["charts"]
    assert all(w > 250 and h > 100 for _, _, _, w, h in seen["charts"]) and all(n > 0 for _, n in seen["images"])
    assert (drill_env / "reports" / "lmt-run-good.pdf").read_bytes().startswith(b"%PDF-")
    # the lease: gc --expired leaves it while the lease runs, removes it once it has ended
    assert labmgr("lab", "gc", "--expired").returncode == 0 and leftovers(hypervisor, "lmt-run-good")
    record = records.load("lmt-run-good")
    record.lease_until = "2000-01-01T00:00:00Z"
    record.save()
    assert "removed lmt-run-good" in labmgr("lab", "gc", "--expired").stdout
    assert leftovers(hypervisor, "lmt-run-good") == []


def test_a_failing_probe_pings_fail_and_the_webhook(drill_env, hypervisor, exits) -> None:
    with recording_http_server() as server:
        path = plan(drill_env, "bad", server, probes="bad-probes.yaml", objectives={"rto": "1s"})
        result = labmgr("run", str(path))
        exits.append(result.returncode)
        assert result.returncode == 1, result.stdout + result.stderr   # the failed probe's code, not 3
        assert paths_of(server) == ["/ping/abc/start", "/hook", "/ping/abc/fail"]
        hook = json.loads(server.requests[1]["body"])
    assert hook["exit_code"] == 1 and "session-file" in json.dumps(hook)
    # the plan's RTO overrides the spec's; the spec's RPO stays, not measured (no point passed its probes)
    assert [(o["name"], o["met"], o["target_seconds"]) for o in hook["objectives"]] == [
        ("rto", False, 1), ("rpo", False, 10800)]
    junit = valid_junit(drill_env / "bad.xml")
    assert junit.find(".//failure") is not None and junit.find(".//testcase[@name='rto']/failure") is not None
    metrics = (drill_env / "bad.prom").read_text()
    assert 'labmgr_objective_met{environment="lmt-run",objective="rto"} 0.0' in metrics
    report = (drill_env / "reports" / "lmt-run-bad.md").read_text()
    assert "> **NOT PROVEN: 1 problem; 1 point in time restored, 0 of 1 probes passed**" in report, report
    assert "> - session-file on app at " in report and re.search(r"> RTO .* against 1 s: MISSED by", report)
    assert leftovers(hypervisor, "lmt-run-bad") == []                        # not kept: removed


def test_a_missed_objective_exits_3(drill_env, hypervisor, exits) -> None:
    """Every probe passes, but the newest restored data is over an hour old: the RPO of 1m is missed."""
    with recording_http_server() as server:
        path = plan(drill_env, "late", server, objectives={"rpo": "1m"})
        result = labmgr("run", str(path))
        exits.append(result.returncode)
        assert result.returncode == 3, result.stdout + result.stderr
        assert paths_of(server) == ["/ping/abc/start", "/hook", "/ping/abc/fail"]
        hook = json.loads(server.requests[1]["body"])
    assert hook["exit_code"] == 3 and hook["text"].startswith("labmgr drill MISSED an objective") and not hook["failed_probes"]
    assert re.search(r"^RPO 1h\b.* against 1m: MISSED by ", result.stdout, re.M), result.stdout
    assert valid_junit(drill_env / "late.xml").find(".//testcase[@name='rpo']/failure").get("type") == "objective"
    assert 'labmgr_drill_exit_code{environment="lmt-run"} 3.0' in (drill_env / "late.prom").read_text()
    report = (drill_env / "reports" / "lmt-run-late.md").read_text()
    assert "> **PROVEN, BUT AN OBJECTIVE WAS MISSED: 1 point in time restored, every critical probe passed**" in report
    assert leftovers(hypervisor, "lmt-run-late") == []


def test_a_drill_that_cannot_start_exits_2(drill_env, hypervisor, exits) -> None:
    with recording_http_server() as server:
        path = plan(drill_env, "broken", server, snapshot="20000101T000000Z")
        result = labmgr("run", str(path))
        exits.append(result.returncode)
        assert result.returncode == 2, result.stdout + result.stderr
        assert paths_of(server) == ["/ping/abc/start", "/hook", "/ping/abc/fail"]
    assert "has no snapshot '20000101T000000Z'" in result.stderr
    assert valid_junit(drill_env / "broken.xml").find(".//error") is not None
    assert leftovers(hypervisor, "lmt-run-broken") == []


def test_history_shows_the_trend(drill_env, exits) -> None:
    """Every drill this module ran is counted, whichever tests ran before: one of its own first."""
    with recording_http_server() as server:
        exits.append(labmgr("run", str(plan(drill_env, "history", server, snapshot="20000101T000000Z"))).returncode)
    result = labmgr("history", str(drill_env / "lmt-run.yaml"))
    assert f"{len(exits)} drills, {100 * exits.count(0) / len(exits):.0f}% passed" in result.stdout, result.stdout
    judged = len(exits) - exits.count(2)            # a drill that could not run is judged against nothing
    met = exits.count(0) + exits.count(3)            # only the failing drill's plan asks an RTO of 1 s
    assert (f"RTO objective met in {met} of {judged} drills" in result.stdout) == bool(judged), result.stdout
    # exit 1 when no drill ever passed (the last good drill is too old, or never happened)
    assert result.returncode == (0 if 0 in exits else 1), result.stdout + result.stderr


def test_bad_plans_are_refused_with_their_line(tmp_path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("environment: env.yaml\nprobes: p.yaml\npoints: sometime soon\n")
    result = labmgr("run", str(path))
    assert result.returncode == 2 and "plan.yaml:3: points" in result.stderr
