"""The last clean hour, for real: YARA over dumps collected from a real guest,
``--at last-clean``, bisection and its contradiction, on one production VM and one lab.

The shared production VM (conftest db_production) works for four simulated hours; its
PostgreSQL database and its session files are collected after each hour. From
hour ``BAD`` on, the day is damaged: an invoice is deleted (a gap the
sequence_gaps probe sees) and a marker string is planted in a session file and
in a database row (what the YARA rule sees). Checks are read from the guest.
"""

from __future__ import annotations

import json
import math
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from labmgr.dumps.hourly import collect
from labmgr.lab import records
from labmgr.lab.teardown import lab_down
from labmgr.lab.up import lab_up
from labmgr.snapshot import capture, delete_snapshot
from labmgr.spec import load_environment
from labmgr.timeparse import format_point

from helpers import APP_DATA, create_shop_database, fresh_db_production, labmgr, psql

pytestmark = pytest.mark.libvirt
PREFIX = "lms-prod"
LAB = "lms-lab"
T0 = datetime(2026, 11, 22, 0, 0, tzinfo=timezone.utc)
HOURS = range(1, 5)
BAD = 3
SESSIONS = f"{APP_DATA}/sessions"
MARKER = "LMS-RANSOM-NOTE-7f3a"
RULES = 'rule ransom_note { strings: $a = "LMS-RANSOM-NOTE-7f3a" condition: $a }\n'
PROBES = {"probes": [
    {"name": "invoice-numbers", "kind": "sequence_gaps", "server": "db", "table": "invoices", "column": "no",
     "start": 1},
    {"name": "sessions", "kind": "command", "server": "db",
     "command": f"grep -l user {SESSIONS}/sess_* | wc -l", "output_matches": "^[1-9][0-9]*$"},
    # an even number of session files: good, bad, good ... by the hour: not monotone
    {"name": "sessions-even", "kind": "command", "server": "db",
     "command": f"test $(( $(ls {SESSIONS} | wc -l) % 2 )) -eq 0"},
]}


def hour_of(point: str) -> int:
    return int((datetime.fromisoformat(point.replace("Z", "+00:00")) - T0).total_seconds() // 3600)


@pytest.fixture(scope="module")
def day(hypervisor, db_production, tmp_path_factory):
    """The shared db production, its four hours of dumps (damaged from hour BAD on), and a spec for them."""
    agent, spec = fresh_db_production(hypervisor, db_production, PREFIX)
    create_shop_database(agent)
    psql(agent, "CREATE TABLE invoices (no integer PRIMARY KEY, created_at timestamptz NOT NULL);"
                "CREATE TABLE notes (body text)")
    agent.run(["mkdir", "-p", SESSIONS])
    directory = tmp_path_factory.mktemp("lms")
    spec["servers"][0]["dumps"] = [
        {"name": "invoices", "kind": "postgres", "database": "shop", "via": "agent"},
        {"name": "sessions", "kind": "files", "path": SESSIONS, "via": "agent"}]
    spec["dumps"] = {"store": str(directory / "store")}
    spec_path = directory / f"{PREFIX}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = load_environment(spec_path)
    for hour in HOURS:
        stamp = T0 + timedelta(hours=hour)
        first = (hour - 1) * 10 + 1
        psql(agent, f"INSERT INTO invoices SELECT n, '{stamp.isoformat()}' "
                    f"FROM generate_series({first}, {first + 9}) n")
        body = f"user|s:5:\"u{hour}\";"
        if hour == BAD:       # the damage: a lost invoice, a ransom note in a file and in the database
            psql(agent, f"DELETE FROM invoices WHERE no = 15; INSERT INTO notes VALUES ('{MARKER}')")
            body += MARKER
        agent.run(["sh", "-c", f"printf '%s' '{body}' > {SESSIONS}/sess_h{hour}"])
        result = collect(env, taken_at=stamp)
        assert not result.failed, result.failed
    (directory / "rules.yar").write_text(RULES)
    (directory / "probes.yaml").write_text(yaml.safe_dump(PROBES, sort_keys=False))
    return env, spec_path, directory


@pytest.fixture(scope="module")
def lab(hypervisor, day):
    env, spec, directory = day
    taken = capture(env)
    try:
        record = lab_up(env, spec, name=LAB)
        yield record, hypervisor.domain(record.servers["db"].domain).agent(timeout=300)
    finally:
        lab_down(LAB, hypervisor_uri="qemu:///system")
        delete_snapshot(env.name, taken.id)


def guest_hour(agent) -> int:
    """The hour the lab's database is at, read in the guest: its newest invoice."""
    newest = psql(agent, "SELECT max(created_at) FROM invoices")
    return int((datetime.fromisoformat(newest) - T0).total_seconds() // 3600)


def report_of_the_lab(tmp_path) -> str:
    """The lab's DR report as Markdown: what each step below left in the history."""
    result = labmgr("report", LAB, "--format", "md", "-o", str(tmp_path / "report.md"))
    assert result.returncode == 0, result.stderr
    return (tmp_path / "report.md").read_text()


@pytest.fixture(scope="module")
def first_scan(day) -> dict:
    """The day's first `dumps scan` (its JSON report): what the marker test reads, and what
    --at last-clean needs, whichever of them runs first."""
    env, spec, directory = day
    result = labmgr("dumps", "scan", str(spec), "--rules", str(directory / "rules.yar"), "--json")
    assert result.returncode == 1, result.stderr
    return json.loads(result.stdout)


def test_a_planted_marker_flags_exactly_its_hour_and_later(day, first_scan) -> None:
    env, spec, directory = day
    report = first_scan
    assert report["scanned"] == 2 * len(HOURS) and report["bytes"] > 0
    flagged = {(hour_of(d["taken_at"]), d["source"]): [(f["rule"], f["member"]) for f in d["findings"]]
               for d in report["dumps"] if not d["clean"]}
    # the tar member that holds it, and the SQL text pg_restore made of the custom-format dump
    assert flagged == {**{(h, "sessions"): [("ransom_note", f"sess_h{BAD}")] for h in HOURS if h >= BAD},
                       **{(h, "invoices"): [("ransom_note", "dump.sql")] for h in HOURS if h >= BAD}}
    again = json.loads(labmgr("dumps", "scan", str(spec), "--rules", str(directory / "rules.yar"),
                              "--json").stdout)
    assert (again["scanned"], again["cached"]) == (0, 2 * len(HOURS))


def test_last_clean_restores_the_hour_before_the_marker(day, first_scan, lab) -> None:
    record, agent = lab
    result = labmgr("lab", "restore", LAB, "--at", "last-clean")
    assert result.returncode == 0, result.stderr
    assert guest_hour(agent) == BAD - 1
    assert agent.run(["ls", SESSIONS]).split() == [f"sess_h{h}" for h in range(1, BAD)]
    assert "(asked: last-clean)" in result.stdout


def test_bisection_finds_the_first_bad_hour_within_its_budget(day, lab, hypervisor, tmp_path) -> None:
    env, spec, directory = day
    record, agent = lab
    result = labmgr("bisect", LAB, "--probes", str(directory / "probes.yaml"), "--probe", "invoice-numbers",
                    "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "found"
    assert (hour_of(report["last_good"]), hour_of(report["first_bad"])) == (BAD - 1, BAD)
    assert report["hours"] == len(HOURS)
    assert report["restores"] <= math.ceil(math.log2(len(HOURS))) + 2
    # both boundary hours were probed, with the answer they have
    verdicts = {hour_of(s["point"]): s["passed"] for s in report["steps"]}
    assert verdicts[BAD - 1] is True and verdicts[BAD] is False
    assert guest_hour(agent) == BAD - 1                  # the lab is left at the last good hour
    assert psql(agent, "SELECT count(*) FROM invoices WHERE no = 15") == "1"
    assert hour_of(records.load(LAB).point["at"]) == BAD - 1
    report = report_of_the_lab(tmp_path)
    assert "## Bisections" in report and "**found**" in report
    assert f"first bad hour {format_point(T0 + timedelta(hours=BAD))}" in report


def test_mutate_scores_the_probes_and_returns_the_lab_to_its_point(day, lab, hypervisor, tmp_path) -> None:
    """At hour BAD - 1 every probe below passes: the damages are all the mutation's."""
    env, spec, directory = day
    record, agent = lab
    restored = labmgr("lab", "restore", LAB, "--at", format_point(T0 + timedelta(hours=BAD - 1, minutes=30)))
    assert restored.returncode == 0, restored.stderr
    result = labmgr("probe", LAB, "--probes", str(directory / "probes.yaml"), "--mutate", "--only",
                    "invoice-numbers", "--only", "sessions",
                    "--json", str(directory / "mutate.json"), timeout=900)
    assert result.returncode == 1, result.stderr        # one damage went unnoticed
    score = json.loads((directory / "mutate.json").read_text())
    assert (score["caught"], score["applied"]) == (3, 4), score
    caught = {d["damage"]: d["caught_by"] for d in score["damages"]}
    assert caught["a row from the middle of invoices is deleted"] == ["invoice-numbers"]
    assert caught["table invoices is dropped"] == ["invoice-numbers"]
    assert caught[f"the file {SESSIONS}/sess_* emptied"] == ["sessions"]
    assert score["blind"] == [f"nothing notices when the file {SESSIONS}/sess_* changed (on db)"]
    assert "score 3/4 damages caught (75%)" in result.stdout
    # back at its point: the same probe answers, the same data in the guest, no snapshot left behind
    assert score["baseline"] == score["after"] == {"invoice-numbers": True, "sessions": True}
    assert guest_hour(agent) == BAD - 1
    assert psql(agent, "SELECT count(*) FROM invoices") == str(10 * (BAD - 1))
    assert "labmgr mutation" not in agent.run(["sh", "-c", f"cat {SESSIONS}/*"])
    snapshots = subprocess.run(["virsh", "-c", "qemu:///system", "snapshot-list", record.servers["db"].domain,
                                "--name"], capture_output=True, text=True, check=True).stdout.split()
    assert "labmgr-previous" not in snapshots
    assert "mutating" not in records.load(LAB).point
    report = report_of_the_lab(tmp_path)
    assert "**3 of 4** damages caught" in report and "**missed**" in report


def test_a_day_that_is_not_monotone_is_reported_as_such(day, lab, tmp_path) -> None:
    env, spec, directory = day
    record, agent = lab
    result = labmgr("bisect", LAB, "--probes", str(directory / "probes.yaml"), "--probe", "sessions-even",
                    timeout=900)
    assert result.returncode == 1, result.stderr
    assert "contradict" in result.stdout and "sweep" in result.stdout
    assert guest_hour(agent) == HOURS[-1]      # left at the (good) last hour, not at a bad one
    assert "**non-monotone**" in report_of_the_lab(tmp_path)
