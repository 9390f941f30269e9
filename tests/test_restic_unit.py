"""restic repositories as backup sources, without a VM: the spec's shape, restic's times, the tar renamed
on the way, and real repositories (a directory, and a bucket of moto's S3 server through restic's own s3
backend with read-only keys) indexed, read back and checked, with nothing written to them; each error
one line."""

from __future__ import annotations

import io
import shutil
import tarfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from pydantic import ValidationError

from labmgr.dumps.errors import DumpError
from labmgr.dumps.plain import open_record
from labmgr.dumps.store import store_for
from labmgr.sources.index import GONE, index
from labmgr.sources.restic import parse_time, renamed_tar
from labmgr.sources.storagecheck import check_storage
from labmgr.spec import load_environment
from labmgr.spec.backups import BackupSource
from labmgr.spec.model import DumpSource

from backups import bucket_fingerprint, directory_fingerprint, stream_bytes
from helpers import labmgr, one_line_error
from resticrepo import ResticRepo, password_file
from s3server import READ_ONLY

UTC = timezone.utc
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


# the spec ---------------------------------------------------------------------------------------------

RESTIC = {"password_file": "/etc/labmgr/restic.pass", "path": "/srv/uploads"}


def test_a_restic_source_needs_no_name_and_takes_no_codecs() -> None:
    backup = BackupSource(directory="/mnt/restic", restic=RESTIC)
    assert backup.name is None and backup.codecs == ("none", "none")
    for extra in ({"name": "x-%Y%m%d.tar"}, {"encryption": "age"}, {"timezone": "Europe/Berlin"}):
        with pytest.raises(ValidationError, match="restic repository's snapshots have no"):
            BackupSource(directory="/mnt/restic", restic=RESTIC, **extra)
    with pytest.raises(ValidationError, match="needs 'name'"):
        BackupSource(directory="/mnt/backups")
    with pytest.raises(ValidationError, match="password_file"):
        BackupSource(directory="/mnt/restic", restic={"path": "/srv"})
    with pytest.raises(ValidationError, match="only a 'files' dump source"):
        DumpSource(name="shop", kind="postgres", database="shop",
                   backup={"directory": "/mnt/restic", "restic": RESTIC})


@pytest.mark.parametrize("text, expected", [
    ("2026-11-29T06:24:10.495071036Z", datetime(2026, 11, 29, 6, 24, 10, tzinfo=UTC)),
    ("2026-11-20T09:00:00+01:00", datetime(2026, 11, 20, 8, 0, tzinfo=UTC)),
    ("2026-11-20T08:00:00Z", datetime(2026, 11, 20, 8, 0, tzinfo=UTC)),
])
def test_restic_times_become_utc_seconds(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


def tar_of(members: list[tuple[str, bytes | None, str | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.LNKTYPE, link
                tar.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_the_backed_up_path_is_taken_off_each_member() -> None:
    source = tar_of([("srv/uploads/a.txt", b"a", None), ("srv/uploads/sub", None, None),
                     ("srv/uploads/sub/b", b"b" * 5000, None), ("srv/uploads/hard", None, "srv/uploads/a.txt")])
    out = io.BytesIO()
    renamed_tar(io.BytesIO(source), out, "srv/uploads")
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert [(m.name, m.linkname) for m in tar] == [("./a.txt", ""), ("./sub", ""), ("./sub/b", ""),
                                                       ("./hard", "./a.txt")]
        assert tar.extractfile("./sub/b").read() == b"b" * 5000


# real repositories ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def team(tmp_path_factory, s3server):
    """One folder backed up hourly (a missing hour, another host's snapshot, another folder's) into a local
    repository and into one in a bucket; read-only keys for labmgr."""
    root = tmp_path_factory.mktemp("restic")
    folder = root / "srv" / "uploads"
    (folder / "sub").mkdir(parents=True)
    elsewhere = root / "etc"
    elsewhere.mkdir()
    (elsewhere / "motd").write_text("not uploads\n")
    admin = s3server.client()
    admin.create_bucket(Bucket="lmk-team")
    reader = s3server.user("lmk-restic-reader", READ_ONLY)
    keys = {"aws_access_key_id": s3server.admin["aws_access_key_id"],
            "aws_secret_access_key": s3server.admin["aws_secret_access_key"]}
    pw = password_file(root)
    local = ResticRepo(str(root / "repo"), pw)
    remote = ResticRepo(f"s3:{s3server.endpoint}/lmk-team/team/restic", pw, keys)

    def on_both(job) -> None:       # each restic call spends ~0.4 s deriving its key: both repositories at once
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(job, (local, remote)))

    on_both(ResticRepo.init)
    for hour in (0, 1, 3):
        (folder / "hour.txt").write_text(f"hour {hour}\n")
        (folder / "sub" / f"file-{hour}").write_bytes(bytes([hour]) * 3000)
        on_both(lambda repo: repo.backup(folder, T0 + timedelta(hours=hour)))

    def others(repo) -> None:
        repo.backup(folder, T0 + timedelta(hours=2), host="someone-else")
        repo.backup(root / "srv", T0 + timedelta(hours=2, minutes=30))        # holds uploads too: a point
        repo.backup(elsewhere, T0 + timedelta(hours=2, minutes=40))          # another folder: no point
    on_both(others)

    def spec(location: dict, password=pw, path=str(folder)) -> object:
        document = {
            "name": "lmk-unit", "networks": [{"name": "lan", "cidr": "10.0.0.0/24"}],
            "dumps": {"store": str(tmp_path_factory.mktemp("store"))},
            "servers": [{"name": "app", "hostname": "app01.shop.test", "domain": "lmk-app",
                         "nics": [{"network": "lan", "ip": "10.0.0.12", "mac": "52:54:00:00:00:12"}],
                         "dumps": [{"name": "uploads", "kind": "files", "path": "/srv/uploads", "backup": {
                             **location, "restic": {"password_file": str(password), "path": path,
                                                    "host": "lmk-prod"}}}]}]}
        file = tmp_path_factory.mktemp("spec") / "lmk-unit.yaml"
        file.write_text(yaml.safe_dump(document, sort_keys=False))
        return file

    s3 = {"s3": {"bucket": "lmk-team", "prefix": "team/restic", "endpoint": s3server.endpoint,
                 "region": "us-east-1", "credentials_file": str(reader)}}
    return {"root": root, "folder": folder, "local": local, "remote": remote, "spec": spec, "admin": admin,
            "locations": {"directory": {"directory": local.repository}, "s3": s3}}


def members(stream) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(stream_bytes(stream))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


@pytest.mark.parametrize("where", ["directory", "s3"])
def test_snapshots_are_indexed_read_and_checked_without_a_byte_written(team, where: str) -> None:
    before = (directory_fingerprint(team["root"] / "repo"), bucket_fingerprint(team["admin"], "lmk-team"))
    env = load_environment(team["spec"](team["locations"][where]))
    [result] = index(env)
    assert (result.matched, len(result.added), result.ignored) == (4, 4, [])     # this host's, holding the path
    times = [T0 + timedelta(hours=h) for h in (0, 1, 3)] + [T0 + timedelta(hours=2, minutes=30)]
    source = env.servers[0].dumps[0]
    with store_for(env) as store:
        records = store.catalog.list("app", "uploads")
        assert sorted(r.taken_at for r in records) == sorted(times)
        assert all(r.origin.endswith("/snapshots/" + r.checksum.removeprefix("restic:")) for r in records)
        hour1 = store.catalog.newest_good_at("app", "uploads", T0 + timedelta(hours=1, minutes=59))
        with open_record(hour1, None, source.backup) as plain:
            assert members(plain) == {"./hour.txt": b"hour 1\n", "./sub/file-0": bytes([0]) * 3000,
                                      "./sub/file-1": bytes([1]) * 3000}
    assert [(len(r.added), r.unchanged) for r in index(env)] == [(0, 4)]
    [report] = check_storage(env, now=T0 + timedelta(hours=3, minutes=10))
    assert report.backups == 4 and report.newest == T0 + timedelta(hours=3)
    if where == "s3":
        assert report.can_delete is False and "versioning" in " ".join(report.problems)
    after = (directory_fingerprint(team["root"] / "repo"), bucket_fingerprint(team["admin"], "lmk-team"))
    assert after == before


def test_errors_are_one_line_each(team, tmp_path) -> None:
    location = team["locations"]["directory"]
    wrong = labmgr("dumps", "index", str(team["spec"](location, password=password_file(tmp_path, "nope"))))
    assert "wrong password" in one_line_error(wrong)
    missing = labmgr("dumps", "index", str(team["spec"]({"directory": str(tmp_path / "no-repo")})))
    assert "there is no restic repository there" in one_line_error(missing)
    unreadable = labmgr("dumps", "index", str(team["spec"](location, password=tmp_path / "no-such-file")))
    assert "cannot read the restic password file" in one_line_error(unreadable)
    env = load_environment(team["spec"](location, path=str(team["folder"] / "hour.txt")))   # a file, not a folder
    index(env)
    with store_for(env) as store:
        record = store.catalog.list("app", "uploads")[0]
    with pytest.raises(DumpError, match="is not a directory in it"):
        with open_record(record, None, env.servers[0].dumps[0].backup) as plain:
            stream_bytes(plain)


def test_a_snapshot_gone_from_the_repository_is_refused_then_marked_gone(team, tmp_path) -> None:
    copy = ResticRepo(str(tmp_path / "repo"), team["local"].password_file)
    shutil.copytree(team["local"].repository, copy.repository)
    env = load_environment(team["spec"]({"directory": copy.repository}))
    index(env)
    backup = env.servers[0].dumps[0].backup
    with store_for(env) as store:
        victim = store.catalog.newest_good_at("app", "uploads", T0 + timedelta(hours=1))
    copy.forget(victim.checksum.removeprefix("restic:"))
    with pytest.raises(DumpError, match="snapshot .* the snapshot is gone from the repository"):
        with open_record(victim, None, backup) as plain:
            stream_bytes(plain)
    [result] = index(env)
    assert [r.id for r in result.gone] == [victim.id]
    with store_for(env) as store:
        assert [(r.state, r.note) for r in store.catalog.list("app", "uploads") if r.id == victim.id] == [("bad", GONE)]
