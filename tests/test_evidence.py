"""Every restored hour leaves evidence (issue 19): screens, serial lines, the engines' own checks,
and a data profile compared hour by hour.

The shared production server (conftest's db_production: the db test image, with a screen) runs PostgreSQL, MariaDB and a
directory of session files. Four hours are collected: 1 and 2 normal, 3 with 30% of the
invoices deleted, 4 with every session file replaced by random bytes. The module's fixture
restores and probes each hour in turn (the drift probe compares with the hour before); the
consistency tests corrupt a restored lab's files with dd while its database server is stopped.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from lxml import etree
from PIL import Image

from labmgr import paths
from labmgr.dumps.hourly import collect
from labmgr.history import history_for
from labmgr.history_evidence import consoles_of, profiles_of, row_counts
from labmgr.lab.probing import probe_lab
from labmgr.lab.restore import lab_restore
from labmgr.lab.teardown import lab_down
from labmgr.lab.up import lab_up
from labmgr.snapshot import capture, delete_snapshot
from labmgr.spec import load_environment
from labmgr.timeparse import format_point

from helpers import APP_DATA, create_shop_database, fresh_db_production, psql, wait_until_ready

pytestmark = pytest.mark.libvirt
PREFIX = "lme"
LAB = "lme-lab"
T0 = datetime(2026, 11, 21, 6, 0, tzinfo=timezone.utc)
SESSIONS = f"{APP_DATA}/sessions"
PROBES = {"probes": [
    {"name": "data-drift", "kind": "drift", "server": "db", "max_shrink": "10%", "max_entropy_jump": "20%"},
    {"name": "engines-agree", "kind": "consistency", "server": "db", "timeout": 300},
]}
# production's work, hour by hour (run in the guest before each collection)
WORK = {
    1: ("INSERT INTO invoices SELECT n, now() FROM generate_series(1, 50) n", 10, range(1, 6), False),
    2: ("INSERT INTO invoices SELECT n, now() FROM generate_series(51, 100) n", 5, range(6, 8), False),
    3: ("DELETE FROM invoices WHERE no % 10 IN (1, 2, 3)", 5, range(8, 9), False),       # 30% gone
    4: ("INSERT INTO invoices SELECT n, now() FROM generate_series(101, 110) n", 5, range(9, 10), True),
}


def at(hour: int) -> str:
    return format_point(T0 + timedelta(hours=hour, minutes=30))


def mariadb(agent, sql: str) -> str:
    return agent.run(["mariadb", "-N", "-B", "crm", "-e", sql]).strip()


@pytest.fixture(scope="module")
def swept(hypervisor, db_production, tmp_path_factory):
    """Production, its four hours, a lab, and each hour restored and probed for drift: {hour: summary}, and
    the history's row counts per hour read right then (a consistency test's later runs add profiles)."""
    agent, spec = fresh_db_production(hypervisor, db_production, PREFIX)
    create_shop_database(agent)
    psql(agent, "CREATE TABLE invoices (no integer PRIMARY KEY, created_at timestamptz NOT NULL)")
    agent.run(["mariadb", "-e", "CREATE DATABASE crm; CREATE TABLE crm.customers "
                                "(id int AUTO_INCREMENT PRIMARY KEY, name varchar(40))"])
    agent.run(["mkdir", "-p", SESSIONS])
    spec["servers"][0]["dumps"] = [
        {"name": "invoices", "kind": "postgres", "database": "shop", "via": "agent"},
        {"name": "crm", "kind": "mariadb", "database": "crm", "via": "agent"},
        {"name": "sessions", "kind": "files", "path": SESSIONS, "via": "agent"},
    ]
    spec["dumps"] = {"store": str(tmp_path_factory.mktemp("store"))}
    spec_path = tmp_path_factory.mktemp("spec") / f"{PREFIX}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = load_environment(spec_path)
    for hour, (sql, customers, sessions, encrypt) in WORK.items():
        psql(agent, sql)
        mariadb(agent, f"INSERT INTO customers (name) SELECT concat('c', seq) FROM seq_1_to_{customers}")
        for n in sessions:      # a PHP session: short readable text, repeated to a few KiB
            agent.run(["sh", "-c", f"yes 'user|s:5:\"alice\";cart|a:{n}:{{}}' | head -c 3000 "
                                   f"> {SESSIONS}/sess_{n:04d}"])
        if encrypt:             # what ransomware leaves: the same files, random bytes
            agent.run(["sh", "-c", f"for f in {SESSIONS}/*; do head -c 16384 /dev/urandom > \"$f\"; done"])
        result = collect(env, taken_at=T0 + timedelta(hours=hour))
        assert not result.failed, result.failed
    taken = capture(env)
    try:
        record = lab_up(env, spec_path, name=LAB)
        try:
            probes = tmp_path_factory.mktemp("probes") / "probes.yaml"
            probes.write_text(yaml.safe_dump(PROBES, sort_keys=False))
            summaries = {}
            for hour in WORK:
                lab_restore(LAB, at(hour))
                summaries[hour] = probe_lab(LAB, probes, only=["data-drift"])
            with history_for(env) as history:
                counts = row_counts(history, env.name, LAB)
            yield env, counts, probes, summaries, hypervisor.domain(record.servers["db"].domain)
        finally:
            lab_down(LAB, hypervisor_uri="qemu:///system")
    finally:
        delete_snapshot(env.name, taken.id)
        shutil.rmtree(paths.state_dir() / "evidence" / env.name, ignore_errors=True)   # screens, serial lines
        with contextlib.suppress(OSError):
            (paths.snapshots_dir() / env.name).rmdir()


def drift(summary):
    [result] = [r for r in summary.results if r.name == "data-drift"]
    return result


def test_drift_passes_normal_hours_and_names_what_moved(swept) -> None:
    _, counts, _, summaries, _ = swept
    first, second, shrunk, encrypted = (drift(summaries[h]) for h in WORK)
    assert first.passed and "no earlier restored hour" in first.detail, first.detail
    assert second.passed, second.detail
    assert not shrunk.passed
    assert (f"table shop.invoices shrank from 100 rows at {at(2)} to 70 at {at(3)} (-30%, allowed 10%)"
            in shrunk.detail), shrunk.detail
    assert "sessions" not in shrunk.detail and "crm." not in shrunk.detail
    assert not encrypted.passed and "shop.invoices" not in encrypted.detail
    assert f"files sessions ({SESSIONS}): high-entropy share 0% at {at(3)} -> 100% at {at(4)}" \
        in encrypted.detail, encrypted.detail
    assert counts["db: shop.invoices"] == [(at(1), 50), (at(2), 100), (at(3), 70), (at(4), 80)]
    assert [rows for _, rows in counts["db: crm.customers"]] == [10, 15, 20, 25]


def test_every_probe_run_keeps_a_screenshot_and_the_serial_console(swept, hypervisor) -> None:
    env, _, _, summaries, domain = swept
    with history_for(env) as history:
        # the fixture's run at hour 4 (not the newest run: the consistency test's may come after it)
        run_id = history.db.execute("SELECT max(id) FROM history_probe_runs WHERE lab = ? AND point = ?",
                                    (LAB, at(4))).fetchone()[0]
        [console] = consoles_of(history, run_id)
        profile = profiles_of(history, run_id)["db"]
    assert console.error == "", console.error
    with Image.open(console.screenshot) as picture:          # a real PNG, and not one flat colour
        assert picture.format == "PNG" and picture.size == (console.width, console.height)
        assert len(picture.convert("RGB").getcolors(1 << 24)) > 1
    assert "login:" in console.serial_tail, console.serial_tail
    # outside labmgr: the lab's definition logs its serial port to a file, which holds the prompt
    xml = etree.fromstring(subprocess.run(["virsh", "-c", "qemu:///system", "dumpxml", domain.name],
                                          capture_output=True, text=True, check=True).stdout.encode())
    [log] = xml.findall("devices/serial/log")
    assert "login:" in Path(log.get("file")).read_text(errors="replace")
    assert profile["tables"]["shop.invoices"] == {"rows": 80, "max_pk": 110, "counted": "exact"}
    assert profile["files"]["sessions"]["files"] == 9 and profile["files"]["sessions"]["high_entropy"] == 9


def consistency(probes):
    summary = probe_lab(LAB, probes, only=["engines-agree"])
    [result] = summary.results
    return result


def stopped_and_damaged(agent, service: str, path_sql: str, block: int) -> None:
    agent.run(["systemctl", "stop", service], timeout=120)
    agent.run(["sh", "-c", f"dd if=/dev/urandom of={path_sql} bs={block} seek=1 count=1 conv=notrunc"])
    agent.run(["systemctl", "start", service], timeout=120)


def test_a_clean_database_passes_and_corrupted_postgresql_and_mariadb_files_are_caught(swept) -> None:
    """One restored point serves the three checks (a restore fewer): clean, then the PostgreSQL index
    damaged (caught, MariaDB still clean), then the MariaDB table damaged too (caught)."""
    _, _, probes, _, domain = swept
    lab_restore(LAB, at(2))
    clean = consistency(probes)
    assert clean.passed, clean.detail
    agent = domain.agent(timeout=60)
    relation = psql(agent, "SELECT current_setting('data_directory') || '/' || pg_relation_filepath('invoices_pkey')")
    stopped_and_damaged(agent, "postgresql", relation, 8192)
    wait_until_ready(agent, "pg_isready -q")
    corrupt = consistency(probes)
    assert not corrupt.passed
    assert 'btree index "shop.public.invoices_pkey"' in corrupt.detail, corrupt.detail
    assert "crm." not in corrupt.detail, corrupt.detail
    stopped_and_damaged(agent, "mariadb", "/var/lib/mysql/crm/customers.ibd", 16384 * 3)
    wait_until_ready(agent, "mariadb-admin ping")
    corrupt = consistency(probes)
    assert not corrupt.passed
    assert "table crm.customers:" in corrupt.detail, corrupt.detail
