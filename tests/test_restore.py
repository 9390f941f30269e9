"""Point-in-time restore in a running lab, with real PostgreSQL, MariaDB and session files.

The shared production VM (conftest db_production) gets data hour by hour; after each hour its
dumps are collected through the guest agent, stamped with that simulated hour.
A lab cloned once is then switched between hours and must show exactly that
hour's data; broken dumps, failing restores and a silent agent leave it where it was.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import datetime, timedelta, timezone

import lxml.html
import pyrage
import pytest
import yaml

from labmgr.dumps.hourly import collect
from labmgr.dumps.inject import DEFAULT_RESTORE, Restore, inject_and_restore
from labmgr.dumps.media import MediaFile
from labmgr.dumps.store import store_for
from labmgr.hosts import host_for
from labmgr.lab import records
from labmgr.lab.pointintime import CLEAN, points_of
from labmgr.lab.teardown import lab_down
from labmgr.lab.up import lab_up
from labmgr.snapshot import capture, delete_snapshot
from labmgr.spec import load_environment
from labmgr.timeparse import format_point

from backups import Gpg, age_keys, bucket_fingerprint, seal
from helpers import APP_DATA, create_shop_database, fresh_db_production, labmgr, one_line_error, psql
from labmgr.sources.template import NameTemplate
from s3server import READ_ONLY

pytestmark = pytest.mark.libvirt
LAB = "lmt-r"
T0 = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)
HOURS = (1, 2, 3)
SESSIONS = f"{APP_DATA}/sessions"


def work_an_hour(agent, hour: int) -> None:
    """Production's data of ``hour``, the pattern ``assert_at_hour`` checks."""
    stamp = T0 + timedelta(hours=hour)
    first = (hour - 1) * 10 + 1
    psql(agent, f"INSERT INTO invoices SELECT n, '{stamp.isoformat()}' FROM generate_series({first}, {first + 9}) n")
    mariadb(agent, f"INSERT INTO contacts VALUES ({hour}, {hour})")
    agent.run(["sh", "-c", f"echo user{hour} > {SESSIONS}/sess_h{hour}"])


def mariadb(agent, sql: str) -> str:
    return agent.run(["mariadb", "-N", "-B", "crm", "-e", sql]).strip()


@pytest.fixture(scope="module")
def offsite(s3server, tmp_path_factory):
    """The team's own backups: an S3 bucket (moto's server on 127.0.0.1), read-only keys, an age and a
    GnuPG key; the spec names them in each source's 'backup' (docs/sources.md)."""
    keys = tmp_path_factory.mktemp("team-keys")
    age_identity, age_recipient = age_keys(keys)
    s3server.client().create_bucket(Bucket="lmo-team")
    backups = {
        "invoices": {"name": "shop/%Y/%m/%d/shop-%Y-%m-%d_%H%M.pgdump.gz.age", "identity_file": str(age_identity)},
        "crm": {"name": "crm/crm-%Y%m%dT%H%M.sql.zst.gpg", "identity_file": None},
        "sessions": {"name": "sessions/sess-%s.tar.xz"},
    }
    gpg = Gpg(keys)
    backups["crm"]["identity_file"] = str(gpg.key_file)
    s3 = {"bucket": "lmo-team", "endpoint": s3server.endpoint, "region": "us-east-1",
          "credentials_file": str(s3server.user("lmo-restore-reader", READ_ONLY))}
    return {"admin": s3server.client(), "age": age_recipient, "gpg": gpg,
            "backups": {name: {"s3": s3, **{k: v for k, v in b.items() if v}} for name, b in backups.items()}}


@pytest.fixture(scope="module")
def dbprod(hypervisor, db_production, tmp_path_factory, offsite):
    """The shared db production with a 'shop' and a 'crm' database and a sessions folder, all empty."""
    agent, spec = fresh_db_production(hypervisor, db_production, "lmt-dbp")
    create_shop_database(agent)
    psql(agent, "CREATE TABLE invoices (no integer PRIMARY KEY, created_at timestamptz NOT NULL)")
    agent.run(["mariadb", "-e", "CREATE DATABASE crm; CREATE TABLE crm.contacts (id int PRIMARY KEY, hour int)"])
    agent.run(["mkdir", "-p", SESSIONS])
    spec["servers"][0]["dumps"] = [
        {"name": "invoices", "kind": "postgres", "database": "shop", "via": "agent",
         "backup": offsite["backups"]["invoices"]},
        {"name": "crm", "kind": "mariadb", "database": "crm", "via": "agent", "backup": offsite["backups"]["crm"]},
        {"name": "sessions", "kind": "files", "path": SESSIONS, "via": "agent",
         "backup": offsite["backups"]["sessions"]},
    ]
    # encrypted at rest: the store holds only age ciphertext; restore decrypts with the identity
    keys = tmp_path_factory.mktemp("keys")
    identity = pyrage.x25519.Identity.generate()
    (keys / "age.key").write_text(f"{identity}\n")
    spec["dumps"] = {"store": str(tmp_path_factory.mktemp("store")),
                     "encryption": {"recipients": [str(identity.to_public())],
                                    "identity_file": str(keys / "age.key")}}
    path = tmp_path_factory.mktemp("spec") / "lmt-dbp.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return db_production, path, agent


@pytest.fixture(scope="module")
def hourly(dbprod):
    """Three simulated hours of work in production, each followed by collection."""
    environment, spec, agent = dbprod
    env = load_environment(spec)
    for hour in HOURS:
        stamp = T0 + timedelta(hours=hour)
        work_an_hour(agent, hour)
        result = collect(env, taken_at=stamp)
        assert not result.failed, result.failed
        assert len(result.stored) == 3 and all(r.encrypted for r in result.stored)
        assert not result.stored[0].path.read_bytes().startswith(b"PGDMP")    # ciphertext, not a pg_dump
    return env


@pytest.fixture(scope="module")
def lab(hypervisor, dbprod, hourly):
    _, spec, _ = dbprod
    env = load_environment(spec)
    taken = capture(env)
    record = lab_up(env, spec, name=LAB)
    yield record, hypervisor.domain(record.servers["db"].domain).agent(timeout=60)
    lab_down(LAB, hypervisor_uri="qemu:///system")
    delete_snapshot(env.name, taken.id)


def at(hour: int) -> str:
    return format_point(T0 + timedelta(hours=hour, minutes=30))


def assert_at_hour(agent, hour: int) -> None:
    count, newest = psql(agent, "SELECT count(*), max(created_at) FROM invoices").split("|")
    assert int(count) == 10 * hour
    assert datetime.fromisoformat(newest) == T0 + timedelta(hours=hour)
    assert mariadb(agent, "SELECT count(*), max(hour) FROM contacts").split() == [str(hour), str(hour)]
    sessions = agent.run(["ls", SESSIONS]).split()
    assert sessions == [f"sess_h{h}" for h in range(1, hour + 1)]


def start_at_hour(agent, hour: int) -> None:
    """The lab at ``hour`` whatever an earlier test left it at: every test has its own starting point."""
    result = labmgr("lab", "restore", LAB, "--at", at(hour))
    assert result.returncode == 0, result.stderr
    assert_at_hour(agent, hour)


def test_the_lab_shows_exactly_the_hour_asked_for(lab) -> None:
    record, agent = lab
    for hour in (2, 1, 3):
        result = labmgr("lab", "restore", LAB, "--at", at(hour))
        assert result.returncode == 0, result.stderr
        assert "skew between servers' dumps: 0 min" in result.stdout
        assert_at_hour(agent, hour)
        point = records.load(LAB).point
        assert point["dumps"]["db/invoices"] == format_point(T0 + timedelta(hours=hour))
    shown = labmgr("lab", "show", LAB)
    assert "db/invoices: dump of" in shown.stdout


def test_signoff_and_report_of_two_points(lab, tmp_path) -> None:
    _, agent = lab
    for hour in (1, 3):
        start_at_hour(agent, hour)
    signed = labmgr("signoff", LAB, "--user", "alice", "--note", "Q3 invoices present")
    assert signed.returncode == 0, signed.stderr
    md = labmgr("report", LAB, "--format", "md")
    assert md.returncode == 0, md.stderr
    assert "| alice |" in md.stdout and "Q3 invoices present" in md.stdout
    for hour in (1, 3):
        assert f"db/invoices @ {format_point(T0 + timedelta(hours=hour))}" in md.stdout
    assert "| resume |" in md.stdout and "| clone |" in md.stdout     # an instant lab: resumed, not booted
    html_file = tmp_path / "report.html"
    assert labmgr("report", LAB, "--format", "html", "-o", str(html_file)).returncode == 0
    page = lxml.html.parse(str(html_file)).getroot()
    cells = [td.text_content() for td in page.iter("td")]
    assert "alice" in cells and "Q3 invoices present" in cells
    for text in (md.stdout, html_file.read_text()):
        assert "age.key" not in text and "AGE-SECRET-KEY" not in text    # no secrets


def test_no_dump_that_early_is_refused(lab) -> None:
    _, agent = lab
    start_at_hour(agent, 3)
    line = one_line_error(labmgr("lab", "restore", LAB, "--at", format_point(T0)))
    assert "no good invoices dump taken at or before" in line
    assert_at_hour(agent, 3)


def test_tampered_and_truncated_dumps_are_refused_before_the_lab_is_touched(lab, hourly) -> None:
    _, agent = lab
    start_at_hour(agent, 3)
    with store_for(hourly) as store:
        victim = store.catalog.newest_good_at("db", "invoices", T0 + timedelta(hours=2, minutes=30))
        short = store.catalog.newest_good_at("db", "crm", T0 + timedelta(hours=1, minutes=30))
    originals = [(dump, dump.path.read_bytes(), dump.path.stat().st_mode) for dump in (victim, short)]
    try:
        victim.path.chmod(0o644)
        with open(victim.path, "r+b") as f:
            f.seek(100)
            f.write(b"tampered")
        line = one_line_error(labmgr("lab", "restore", LAB, "--at", at(2)))
        assert "db/invoices" in line and "sha256 mismatch" in line
        assert_at_hour(agent, 3)
        short.path.chmod(0o644)
        os.truncate(short.path, short.size // 2)
        line = one_line_error(labmgr("lab", "restore", LAB, "--at", at(1)))
        assert "db/crm" in line and "sha256 mismatch" in line
        assert_at_hour(agent, 3)
        listed = labmgr("dumps", "list", str(records.load(LAB).spec), "--json")
        states = {(d["source"], d["taken_at"]): d["state"] for d in yaml.safe_load(listed.stdout)}
        assert "bad" in states.values()
    finally:        # the hours 1 and 2 stay restorable for the other tests
        with store_for(hourly) as store:
            for dump, data, mode in originals:
                dump.path.chmod(0o644)
                dump.path.write_bytes(data)
                dump.path.chmod(mode)
                store.catalog.mark(dump.id, dump.state)


def test_a_failing_restore_reverts_the_lab(lab, hourly) -> None:
    _, agent = lab
    start_at_hour(agent, 3)
    stamp = T0 + timedelta(hours=4)
    with store_for(hourly) as store:
        for source, kind in (("crm", "mariadb"), ("sessions", "files")):
            good = store.catalog.newest_good_at("db", source, stamp)
            with open(good.path, "rb") as f:
                store.write("db", source, kind, stamp, iter([f.read()]), collector="import")
        store.write("db", "invoices", "postgres", stamp, iter([b"this is not a pg_dump archive"]),
                    collector="import")
    line = one_line_error(labmgr("lab", "restore", LAB, "--at", at(4)))
    assert "server db" in line and "db/invoices" in line and "failed (exit" in line
    assert_at_hour(agent, 3)
    assert records.load(LAB).point["dumps"]["db/invoices"] == format_point(T0 + timedelta(hours=3))


def test_a_silent_agent_leaves_the_lab_as_it_was(lab, hypervisor) -> None:
    record, agent = lab
    start_at_hour(agent, 3)
    domain = hypervisor.domain(record.servers["db"].domain)
    agent.command("guest-exec", path="sh", arg=["-c", "sleep 1; kill -STOP $(pidof qemu-ga)"])
    deadline = time.monotonic() + 30
    while agent.ping(timeout=2):
        assert time.monotonic() < deadline
    line = one_line_error(labmgr("lab", "restore", LAB, "--at", at(2)))
    assert "does not answer" in line and "left as it was" in line
    assert records.load(LAB).point["dumps"]["db/invoices"] == format_point(T0 + timedelta(hours=3))
    with host_for(record.hypervisor) as host:      # the clean point's agent is running again
        domain = points_of(hypervisor, host, records.load(LAB), "db").revert(CLEAN)
    domain.agent().wait_ready(timeout=60)          # raises if it never answers
    assert domain.agent().run(["pidof", "qemu-ga"]).strip()      # and it runs commands again


def test_without_hot_plug_small_dumps_travel_through_the_agent(lab, hourly, tmp_path) -> None:
    """When the medium cannot be hot-plugged, small dumps are written by the guest agent instead."""
    record, agent = lab
    with store_for(hourly) as store:
        dump = store.catalog.newest_good_at("db", "sessions", T0 + timedelta(hours=2, minutes=30))
        with store.open_plain(dump, hourly.dumps.encryption.identity_file) as plain:
            data = plain.read()
    source = tmp_path / "sessions.tar"
    source.write_bytes(data)
    media = MediaFile("sessions.tar", source, hashlib.sha256(data).hexdigest(), "files", "db/sessions", "h2")
    restore = Restore(media, DEFAULT_RESTORE["files"], {"LABMGR_PATH": SESSIONS})
    domain = agent.domain
    # QEMU cannot open a medium that does not exist: the hot-plug is refused
    report = inject_and_restore(domain, tmp_path / "missing.iso", "LABMGR_NONE", [restore], "db")
    assert report.transport == "agent"
    assert agent.run(["ls", SESSIONS]).split() == ["sess_h1", "sess_h2"]


TEAM_HOURS = (5, 6)      # after every hour the other tests restore (and the failing 04:00 dumps)


def team_backups(dbprod, hourly, offsite, tmp_path_factory) -> None:
    """The team's cron job at :15 past hours 5 and 6: real dumps of production, compressed, encrypted,
    uploaded under the team's names (through labmgr's collection into a scratch store, then sealed)."""
    _, _, agent = dbprod
    scratch = hourly.model_copy(update={"dumps": hourly.dumps.model_copy(update={
        "store": tmp_path_factory.mktemp("scratch"), "encryption": None})})
    seals = {"invoices": ("gzip", "age"), "crm": ("zstd", "gpg"), "sessions": ("xz", "none")}
    for hour in (4, *TEAM_HOURS):
        work_an_hour(agent, hour)
        if hour not in TEAM_HOURS:
            continue
        stamp = T0 + timedelta(hours=hour, minutes=15)
        result = collect(scratch, taken_at=stamp)
        assert not result.failed, result.failed
        for record in result.stored:
            compression, cipher = seals[record.source]
            key = NameTemplate(offsite["backups"][record.source]["name"]).render(stamp)
            offsite["admin"].put_object(Bucket="lmo-team", Key=key, Body=seal(
                record.path.read_bytes(), compression, cipher, age_recipient=offsite["age"], gpg=offsite["gpg"]))


def test_a_lab_restored_from_the_teams_own_backups_in_s3(lab, dbprod, hourly, offsite, tmp_path_factory) -> None:
    """Indexed where they are, streamed, decrypted and decompressed on the way; two points; the probes
    pass; the bucket is exactly as it was."""
    _, spec, _ = dbprod
    _, agent = lab
    team_backups(dbprod, hourly, offsite, tmp_path_factory)
    before = bucket_fingerprint(offsite["admin"], "lmo-team")
    indexed = labmgr("dumps", "index", str(spec))
    assert indexed.returncode == 0, indexed.stderr
    assert indexed.stdout.count("2 backups, 2 new") == 3, indexed.stdout
    probes = tmp_path_factory.mktemp("team-probes") / "probes.yaml"
    for hour in (6, 5):
        stamp = T0 + timedelta(hours=hour, minutes=15)
        result = labmgr("lab", "restore", LAB, "--at", format_point(stamp + timedelta(minutes=10)))
        assert result.returncode == 0, result.stderr
        assert_at_hour(agent, hour)
        assert records.load(LAB).point["dumps"]["db/crm"] == format_point(stamp)
        probes.write_text(yaml.safe_dump({"probes": [
            {"name": "invoices", "kind": "sql", "server": "db", "engine": "postgres", "database": "shop",
             "query": "SELECT count(*) FROM invoices", "expect": {"equals": 10 * hour}},
            {"name": "contacts", "kind": "sql", "server": "db", "engine": "mariadb", "database": "crm",
             "query": "SELECT max(hour) FROM contacts", "expect": {"equals": hour}}]}))
        probed = labmgr("probe", LAB, "--probes", str(probes))
        assert probed.returncode == 0, probed.stdout + probed.stderr
    assert bucket_fingerprint(offsite["admin"], "lmo-team") == before
    with store_for(hourly) as store:      # nothing was copied into the store: only catalog rows
        located = [r for r in store.catalog.list() if r.located]
        assert len(located) == 6 and all(r.origin.startswith("s3://lmo-team/") for r in located)
        assert not any(store.root.rglob("*.gz.age")) and not any(store.root.rglob("sess-*"))
