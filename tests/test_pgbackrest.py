"""A lab restored to any second from a team's pgBackRest repository, posix and S3.

A real PostgreSQL on this host archives its WAL with pgBackRest to a posix repository
and to an S3 one (moto's server over https on loopback): a full backup, rows committed
two seconds apart, an incremental backup, more rows. ``dumps index`` records the
stanza's restorable range; ``lab restore --at T`` (T a second between the two backups,
then one after the incremental) restores on the host, replays to T and puts the data
directory in the lab guest from a hot-plugged disk: the guest holds exactly the rows
committed up to T (the next one, committed 1-2 s after T, is absent) and probes pass.
Nothing is written to either repository. A restore SIGKILLed while the host's PostgreSQL
replays leaves no server running and the lab at its old point; the next restore removes
the scratch folder it left (a copy of the customer's cluster).
"""

from __future__ import annotations

import math
import shutil
import signal
import time
from datetime import datetime, timezone

import pytest
import yaml

from labmgr.lab import records
from labmgr.sources import pgscratch
from labmgr.timeparse import format_point

from backups import bucket_fingerprint, directory_fingerprint
from dbservers import as_user, owned_tmpdir, processes_under, require_packages, run, running_postgres
from faults_checks import log  # noqa: F401  (the fault table's rows)
from helpers import fresh_db_production, lab_of_spec, labmgr, one_line_error, psql
from s3server import READ_ONLY

pytestmark = pytest.mark.libvirt
LAB = "lmg-pitr"
STANZA = "shop"
BUCKET = "lmg-pitr"
SCRATCH = pgscratch.ROOT / pgscratch.PREFIX         # the host's restore folders: /var/tmp/labmgr-pgbackrest-*


def pgbackrest(conf, *args: str) -> None:
    run(*as_user("postgres", "pgbackrest", f"--config={conf}", f"--stanza={STANZA}", *args), timeout=180)


@pytest.fixture(scope="module")
def archived(s3server_tls):
    """Production's PostgreSQL, archiving to both repositories; (posix repo, commit times by row, S3 keys)."""
    require_packages("pgbackrest")
    s3 = s3server_tls
    admin = s3.client()
    admin.create_bucket(Bucket=BUCKET)
    admin.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    work = owned_tmpdir("lmg-pgbr-", owner="postgres")
    repo, conf = work / "repo", work / "pgbackrest.conf"
    archive = f"pgbackrest --config={conf} --stanza={STANZA} archive-push %p"
    try:
        with running_postgres({"archive_mode": "on", "archive_command": archive,
                               "track_commit_timestamp": "on"}) as server:
            conf.write_text(f"""[{STANZA}]
pg1-path={server.directory}/data
pg1-socket-path={server.socket_dir}
pg1-port={server.port}
[global]
repo1-path={repo}
repo1-retention-full=9
repo2-type=s3
repo2-s3-bucket={BUCKET}
repo2-s3-endpoint=localhost
repo2-storage-port={s3.endpoint.rsplit(':', 1)[1]}
repo2-s3-region=us-east-1
repo2-s3-uri-style=path
repo2-storage-ca-file={s3.ca_file}
repo2-path=/team/pgbackrest
repo2-s3-key={s3.admin['aws_access_key_id']}
repo2-s3-key-secret={s3.admin['aws_secret_access_key']}
repo2-retention-full=9
lock-path={work}
log-path={work}
start-fast=y
repo1-bundle=y
repo2-bundle=y
""")
            conf.chmod(0o644)
            server.psql("CREATE DATABASE shop")
            server.psql("CREATE TABLE t (n int PRIMARY KEY)", "shop")
            pgbackrest(conf, "stanza-create")
            for number in (1, 2):
                pgbackrest(conf, f"--repo={number}", "--type=full", "backup")
            for n in (1, 2, 3):
                server.psql(f"INSERT INTO t VALUES ({n})", "shop")
                time.sleep(2)
            for number in (1, 2):
                pgbackrest(conf, f"--repo={number}", "--type=incr", "backup")
            for n in (4, 5, 6):
                server.psql(f"INSERT INTO t VALUES ({n})", "shop")
                time.sleep(2)
            segment = server.psql("SELECT pg_walfile_name(pg_switch_wal())")
            deadline = time.monotonic() + 60
            while server.psql("SELECT last_archived_wal FROM pg_stat_archiver") < segment:
                assert time.monotonic() < deadline, "the last WAL segment was not archived"
                time.sleep(0.2)
            commits = dict(tuple(map(float, line.split("|"))) for line in server.psql(
                "SELECT n, extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM t", "shop").splitlines())
        reader = s3.user("lmg-pitr-reader", READ_ONLY)
        yield repo, {int(n): at for n, at in commits.items()}, {
            "bucket": BUCKET, "prefix": "team/pgbackrest", "endpoint": s3.endpoint, "region": "us-east-1",
            "credentials_file": str(reader), "ca_file": str(s3.ca_file)}, admin
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(hypervisor, db_production, archived, tmp_path_factory):
    repo = archived[0]
    _, spec = fresh_db_production(hypervisor, db_production, "lmg-pitr")
    spec["servers"][0]["dumps"] = [{"name": "cluster", "kind": "postgres",
                                    "pgbackrest": {"stanza": STANZA, "directory": str(repo)}}]
    spec["dumps"] = {"store": str(tmp_path_factory.mktemp("store"))}
    with lab_of_spec(spec, tmp_path_factory.mktemp("spec"), LAB) as (path, record):
        yield path, spec, hypervisor.domain(record.servers["db"].domain).agent(timeout=60)
    pgscratch.sweep()        # a killed restore's folder (and server), if a test failed before the next restore


def second_after(commit: float) -> datetime:
    """The first whole second at or after a commit: the commit is in, the next row's (2 s later) is not."""
    return datetime.fromtimestamp(math.ceil(commit), timezone.utc)


def restore_and_probe(spec_path, agent, at: datetime, rows: list[int], tmp_path) -> None:
    result = labmgr("lab", "restore", LAB, "--at", format_point(at))
    assert result.returncode == 0, result.stderr
    assert psql(agent, "SELECT string_agg(n::text, ',' ORDER BY n) FROM t") == ",".join(map(str, rows))
    assert records.load(LAB).point["at"] == format_point(at)
    # a cluster of its own: promoted, and none of pgBackRest's recovery settings left behind
    assert psql(agent, "SELECT pg_is_in_recovery()::text || '|' || current_setting('restore_command') || '|' "
                       "|| current_setting('recovery_target_time')") == "false||"
    probes = tmp_path / "probes.yaml"
    probes.write_text(yaml.safe_dump({"probes": [
        {"name": "rows", "kind": "sql", "server": "db", "engine": "postgres", "database": "shop",
         "query": "SELECT count(*) FROM t", "expect": {"equals": len(rows)}}]}))
    probed = labmgr("probe", LAB, "--probes", str(probes))
    assert probed.returncode == 0, probed.stdout + probed.stderr


def said_point() -> str:
    """The point ``lab show`` says (the next command after a killed restore puts the lab back first)."""
    shown = labmgr("lab", "show", LAB)
    assert shown.returncode == 0, shown.stderr
    return next(line.split()[3] for line in shown.stdout.splitlines() if "point in time:" in line)


def killed_while_replaying(agent, at: datetime, old: datetime, rows: list[int]) -> float:
    """``lab restore`` SIGKILLed while the host's PostgreSQL replays: no server outlives labmgr (read in /proc),
    the lab says its old point and holds its rows; the scratch folder is left for the next restore's sweep."""
    started = time.monotonic()
    killed = labmgr("lab", "restore", LAB, "--at", format_point(at),
                    env={"LABMGR_FAULT_KILL_AT": "pgBackRest replay"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [p for p in SCRATCH.parent.glob(f"{SCRATCH.name}*") if p.is_dir()], "killed before its scratch folder"
    deadline = time.monotonic() + 15
    while processes_under(str(SCRATCH)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_under(str(SCRATCH)) == [], "a replaying PostgreSQL outlived the labmgr that started it"
    assert said_point() == format_point(old)
    assert psql(agent, "SELECT string_agg(n::text, ',' ORDER BY n) FROM t") == ",".join(map(str, rows))
    return time.monotonic() - started


def test_a_lab_restored_to_the_second_from_posix_and_s3_repositories(lab, archived, tmp_path, log) -> None:
    spec_path, spec, agent = lab
    repo, commits, s3, admin = archived
    before = directory_fingerprint(repo), bucket_fingerprint(admin, BUCKET)
    assert before[1], "the S3 repository is empty"

    indexed = labmgr("dumps", "index", str(spec_path))
    assert indexed.returncode == 0, indexed.stderr
    assert "2 backups, restorable to any second from" in indexed.stdout, indexed.stdout
    listed = labmgr("dumps", "list", str(spec_path))
    assert "range" in listed.stdout and f"pgbackrest:{STANZA}@{repo}" in listed.stdout, listed.stdout

    # between the full and the incremental backup, to the second
    first = second_after(commits[2])
    assert 1 <= commits[3] - first.timestamp() <= 2.5
    restore_and_probe(spec_path, agent, first, [1, 2], tmp_path)

    outside = labmgr("lab", "restore", LAB, "--at", "2020-01-01T00:00:00Z")
    assert "outside cluster's restorable range" in one_line_error(outside)
    assert records.load(LAB).point["at"] == format_point(first)
    killed_seconds = killed_while_replaying(agent, second_after(commits[4]), first, [1, 2])

    # the same stanza in the S3 repository, after the incremental backup (the sweep of the killed one's folder)
    spec["servers"][0]["dumps"][0]["pgbackrest"] = {"stanza": STANZA, "s3": s3}
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    indexed = labmgr("dumps", "index", str(spec_path))
    assert indexed.returncode == 0, indexed.stderr
    assert f"pgbackrest:{STANZA}@s3://{BUCKET}/" in indexed.stdout, indexed.stdout
    restore_and_probe(spec_path, agent, second_after(commits[4]), [1, 2, 3, 4], tmp_path)

    assert (directory_fingerprint(repo), bucket_fingerprint(admin, BUCKET)) == before
    assert not list(records.load(LAB).directory.glob("media/*.qcow2"))        # scratch and disks cleaned up
    assert not list(SCRATCH.parent.glob(f"{SCRATCH.name}*"))       # the killed restore's folder and lock too
    log("SIGKILL", "lab restore from pgBackRest, while the host's PostgreSQL replays", "no postgres under "
        "/var/tmp/labmgr-pgbackrest-* (/proc); the lab says its old point and its guest has its rows; the next "
        "restore removes the scratch folder", "pass", killed_seconds)
