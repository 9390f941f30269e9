"""pgBackRest sources without a VM: the spec's shape, the command line a repository gets (never its keys),
WAL segment arithmetic, the restorable range in the catalog, a point planned in it or refused, the timeline's
hours; and (host only: pgbackrest, the postgres user) a missing stanza as one line, the replaying server
dying with the labmgr that started it, the sweep of scratch folders whose lock is free."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from dbservers import as_user, owned_tmpdir, processes_under, run

from labmgr.dumps.catalog import Catalog
from labmgr.dumps.errors import DumpError
from labmgr.sources import pgscratch, pitr
from labmgr.sources.pgbackrest import Repository, StanzaRange, previous_segment
from labmgr.spec.model import DumpSource
from labmgr.spec.pgbackrest import PgBackRestSource

REPO = Path(__file__).parent.parent
START = datetime(2026, 11, 21, 8, 0, 5, tzinfo=timezone.utc)


def source(**pgbackrest) -> DumpSource:
    return DumpSource(name="cluster", kind="postgres", pgbackrest={"stanza": "shop", **pgbackrest})


def test_a_stanza_needs_one_repository_and_an_https_endpoint() -> None:
    assert source(directory="/srv/pgbackrest").database is None      # the whole cluster: no database named
    for wrong in ({}, {"directory": "relative"}, {"directory": "/a", "s3": {"bucket": "team"}},
                  {"s3": {"bucket": "team", "endpoint": "http://127.0.0.1:9000"}}):
        with pytest.raises(ValidationError):
            source(**wrong)
    with pytest.raises(ValidationError, match="postgres source"):
        DumpSource(name="crm", kind="mariadb", database="crm", pgbackrest={"stanza": "s", "directory": "/r"})


def test_the_s3_command_line_names_the_repository_and_never_the_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys.ini"
    keys.write_text("[default]\naws_access_key_id = AKIDREAD\naws_secret_access_key = SECRETREAD\n")
    stanza = PgBackRestSource(stanza="shop", s3={"bucket": "team", "prefix": "pg/", "credentials_file": str(keys),
                                                 "endpoint": "https://s3.example.net:8443", "region": "eu-1"})
    repo = Repository(stanza, tmp_path / "scratch")
    options = " ".join(repo.options)
    assert "--repo1-s3-endpoint=s3.example.net" in options and "--repo1-storage-port=8443" in options
    assert "--repo1-path=/pg" in options and "--repo1-s3-uri-style=path" in options
    assert "SECRET" not in options and "AKID" not in options
    assert repo.env["PGBACKREST_REPO1_S3_KEY"] == "AKIDREAD"
    assert repo.env["PGBACKREST_REPO1_S3_KEY_SECRET"] == "SECRETREAD"
    assert "lock-path=" in (tmp_path / "scratch" / "pgbackrest.conf").read_text()   # locks in scratch


def test_previous_segment_crosses_a_log_id() -> None:
    assert previous_segment("00000001000000000000000A") == "000000010000000000000009"
    assert previous_segment("000000020000000300000000") == "0000000200000002000000FF"


def test_a_point_inside_the_range_is_planned_and_one_outside_refused(tmp_path: Path) -> None:
    cluster = source(directory="/srv/pgbackrest")
    span = StanzaRange(START, START + timedelta(hours=2), 15, [{"label": "F"}], ("1", "2"))
    with Catalog(tmp_path) as catalog:
        with pytest.raises(DumpError, match="no restorable range indexed"):
            pitr.point_in_range(catalog, "db", cluster, START)
        pitr.record_range(catalog, "db", "cluster", cluster.pgbackrest.describe, span)
        at = START + timedelta(minutes=17, seconds=3)
        record = pitr.point_in_range(catalog, "db", cluster, at)
        assert record.taken_at == at and record.origin == "pgbackrest:shop@/srv/pgbackrest"
        for outside in (START - timedelta(seconds=1), START + timedelta(hours=2, seconds=1)):
            with pytest.raises(DumpError, match="outside cluster's restorable range") as refused:
                pitr.point_in_range(catalog, "db", cluster, outside)
            assert "\n" not in str(refused.value)
        again = StanzaRange(START, START + timedelta(hours=3), 15, [], ("1", "3"))
        pitr.record_range(catalog, "db", "cluster", cluster.pgbackrest.describe, again)     # indexed anew
        assert [r.range.end for r in pitr.ranges(catalog)] == [START + timedelta(hours=3)]


def test_the_timeline_shows_every_hour_of_a_range_and_each_restores(tmp_path: Path) -> None:
    cluster = source(directory="/srv/pgbackrest")
    span = StanzaRange(START, START + timedelta(hours=2, minutes=10), 15, [], ("1", "2"))
    day = START.replace(hour=0, minute=0, second=0)
    with Catalog(tmp_path) as catalog:
        pitr.record_range(catalog, "db", "cluster", cluster.pgbackrest.describe, span)
        grid = pitr.with_ranges(catalog, catalog.timeline(day, day + timedelta(days=1)), day,
                                day + timedelta(days=1))
        hours = [START.replace(minute=0, second=0) + timedelta(hours=h) for h in range(3)]
        assert sorted(grid) == hours and all(grid[h][("db", "cluster")].exists for h in hours)
        assert pitr.complete_hours(catalog, [("db", "cluster")], day, day + timedelta(days=1)) == hours
        assert pitr.complete_hours(catalog, [("db", "cluster"), ("db", "files")], day,
                                   day + timedelta(days=1)) == []          # files has no dump in those hours
        assert pitr.span_with_ranges(catalog) == (span.end, span.start)
        # Enter on an hour restores its first second; the range begins inside its first hour: its own first
        points = [pitr.hour_point(catalog, hour) for hour in hours]
        assert START > hours[0] and points == [START, *hours[1:]]
        for at in points:
            assert pitr.point_in_range(catalog, "db", cluster, at).taken_at == at


def test_a_stanza_missing_from_its_repository_is_one_line(tmp_path: Path) -> None:
    """Host only (pgbackrest and the postgres user, no VM): `dumps index` says which stanza, in one line."""
    import yaml
    from helpers import labmgr, one_line_error

    repo = owned_tmpdir("lmg-repo-", owner="postgres")
    try:
        spec = tmp_path / "lmg-missing.yaml"
        spec.write_text(yaml.safe_dump({
            "name": "lmg-missing", "networks": [{"name": "lan", "cidr": "10.0.0.0/24"}],
            "dumps": {"store": str(tmp_path / "store")},
            "servers": [{"name": "db", "hostname": "db01.shop.test", "domain": "shop-db",
                         "nics": [{"network": "lan", "ip": "10.0.0.11", "mac": "52:54:00:00:00:11"}],
                         "dumps": [{"name": "cluster", "kind": "postgres",
                                    "pgbackrest": {"stanza": "nope", "directory": str(repo)}}]}]}))
        line = one_line_error(labmgr("dumps", "index", str(spec)))
        assert f"pgbackrest:nope@{repo}: stanza 'nope' is not usable in the repository" in line
    finally:
        shutil.rmtree(repo, ignore_errors=True)


# the host's scratch: a killed restore leaves no server and, once swept, no folder -------------------------
def initdb(folder: Path) -> tuple[Path, Path]:
    """A small cluster in ``folder``/data, as the host's postgres user; (its data directory, the bindir)."""
    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[4]))[-1].parent
    shutil.chown(folder, "postgres", "postgres")
    run(*as_user("postgres", str(bindir / "initdb"), "-D", str(folder / "data"), "-U", "postgres",
                 "--auth-local=peer", "-E", "UTF8", "--locale=C.UTF-8"))
    return folder / "data", bindir


def child(script: str, *args: str, **popen) -> subprocess.Popen:
    """A Python process of its own running ``script`` with labmgr importable (a labmgr to kill)."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], text=True, cwd=REPO,
                            stdout=subprocess.PIPE, **popen)


def gone(folder: Path, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while processes_under(str(folder)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return processes_under(str(folder)) == []


# they start PostgreSQL servers on the host as its postgres user: not the quick check's (README)
ROOT_SERVICE = pytest.mark.libvirt


@pytest.fixture
def scratch_root():
    """A folder standing for /var/tmp (postgres reaches into it); whatever a test left running in it is stopped."""
    root = owned_tmpdir("lmg-scratch-")
    root.chmod(0o755)
    yield root
    for pidfile in root.glob("*/data/postmaster.pid"):
        pgscratch.stop_postgres(pidfile.parent)
    shutil.rmtree(root, ignore_errors=True)


@ROOT_SERVICE
def test_the_replaying_server_dies_with_the_labmgr_that_started_it(scratch_root: Path) -> None:
    work = scratch_root / "work"
    work.mkdir()
    data, bindir = initdb(work)
    killed = child("""
        import os, signal, sys, time
        from pathlib import Path
        from labmgr.sources.pgrestore import accepting, start_server
        data, bindir = Path(sys.argv[1]), Path(sys.argv[2])
        server = start_server(bindir, data, {"listen_addresses": "", "unix_socket_directories": data.parent},
                              data.parent / "postgres.log", dict(os.environ))
        while not accepting(data):
            assert server.poll() is None, (data.parent / "postgres.log").read_text()
            time.sleep(0.1)
        print(server.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """, str(data), str(bindir))
    postmaster = int(killed.communicate(timeout=60)[0])
    assert killed.returncode == -signal.SIGKILL
    assert gone(work), f"postmaster {postmaster} outlived its parent"


@ROOT_SERVICE
def test_the_sweep_removes_folders_whose_lock_is_free_and_keeps_a_held_one(scratch_root: Path) -> None:
    # a restore going on: another process holds its folder
    holder = child("""
        import sys
        from pathlib import Path
        from labmgr.sources.pgscratch import held_scratch
        with held_scratch(Path(sys.argv[1])) as folder:
            print(folder, flush=True)
            sys.stdin.read()
    """, str(scratch_root), stdin=subprocess.PIPE)
    held = Path(holder.stdout.readline().strip())
    # a restore killed, with a server started as labmgr did before (pg_ctl start: a daemon) still running in it
    killed = child("""
        import os, signal, sys
        from pathlib import Path
        from labmgr.sources.pgscratch import held_scratch
        with held_scratch(Path(sys.argv[1])) as folder:
            print(folder, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """, str(scratch_root))
    left = Path(killed.communicate(timeout=30)[0].strip())
    data, bindir = initdb(left)
    run(*as_user("postgres", str(bindir / "pg_ctl"), "-D", str(data), "-l", str(left / "postgres.log"), "-w",
                 "-o", f"-c listen_addresses= -c unix_socket_directories={left}", "start"))
    assert processes_under(str(left))
    # a folder made before folders had locks; lock files without a folder, one just made and one an hour old
    before = scratch_root / "labmgr-pgbackrest-before"
    before.mkdir()
    young, old = scratch_root / "labmgr-pgbackrest-young.lock", scratch_root / "labmgr-pgbackrest-old.lock"
    young.touch()
    old.touch()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    try:
        assert sorted(pgscratch.sweep(scratch_root)) == sorted([left, before])
        assert held.is_dir() and pgscratch.lock_of(held).exists()
        assert gone(left, timeout=0), "the server in the swept folder still runs"
        assert sorted(p.name for p in scratch_root.iterdir()) == sorted([held.name, f"{held.name}.lock", young.name])
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0 and not held.exists() and not pgscratch.lock_of(held).exists()

