"""Backups a team already makes, read where they are: a real S3-compatible server (moto's, on
127.0.0.1, IAM enforced) and a local directory. Indexed, read back through the one plaintext path,
the storage checked, and nothing written anywhere."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from labmgr.dumps.errors import DumpError
from labmgr.dumps.plain import open_record
from labmgr.dumps.store import store_for
from labmgr.sources.index import GONE, index
from labmgr.sources.storagecheck import check_storage
from labmgr.spec import load_environment

from backups import Gpg, age_keys, bucket_fingerprint, directory_fingerprint, seal, stream_bytes
from helpers import labmgr, one_line_error
from s3server import READ_ONLY

UTC = timezone.utc
T0 = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
HOURS = [0, 1, 2, 4, 5]             # the 03:00 upload never happened
INVOICES = "shop/%Y/%m/%d/shop-%Y-%m-%d_%H%M.pgdump.zst.age"
CRM = "crm/crm-%Y%m%dT%H%M%S.sql.xz.gpg"
UPLOADS = "uploads-%Y-%m-%d-%H.tar.gz"


def content(source: str, hour: int) -> bytes:
    return (f"{source} at hour {hour}\n".encode() + bytes(range(256)) * 300)


@pytest.fixture(scope="module")
def world(s3server, tmp_path_factory):
    """Two buckets and a directory of backups, a read-only and a deleting user, and a spec naming them."""
    root = tmp_path_factory.mktemp("sources")
    age_identity, age_recipient = age_keys(root)
    gpg = Gpg(root)
    admin = s3server.client()
    admin.create_bucket(Bucket="lmo-plain")                                  # no versioning
    admin.create_bucket(Bucket="lmo-vault", ObjectLockEnabledForBucket=True)   # versioned, locked 30 days
    admin.put_object_lock_configuration(Bucket="lmo-vault", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 30}}})
    uploads = root / "uploads"
    (uploads / "old").mkdir(parents=True)
    (uploads / "old" / "README").write_text("not a backup")
    from labmgr.sources.template import NameTemplate
    for hour in HOURS:
        moment = T0 + timedelta(hours=hour)
        admin.put_object(Bucket="lmo-plain", Key="team/" + NameTemplate(INVOICES).render(moment),
                         Body=seal(content("invoices", hour), "zstd", "age", age_recipient=age_recipient))
        admin.put_object(Bucket="lmo-vault", Key=NameTemplate(CRM).render(moment),
                         Body=seal(content("crm", hour), "xz", "gpg", gpg=gpg))
        (uploads / NameTemplate(UPLOADS).render(moment)).write_bytes(seal(content("uploads", hour), "gzip", "none"))
    admin.put_object(Bucket="lmo-plain", Key="team/shop/2026/11/21/notes.txt", Body=b"not a backup")
    reader, deleter = s3server.user("reader", READ_ONLY), s3server.user("deleter", READ_ONLY + [
        "s3:DeleteObject", "s3:DeleteObjectVersion"])

    def spec(credentials, name="shop") -> object:
        s3 = {"endpoint": s3server.endpoint, "region": "us-east-1", "credentials_file": str(credentials)}
        document = {
            "name": name, "networks": [{"name": "lan", "cidr": "10.0.0.0/24"}],
            "dumps": {"store": str(tmp_path_factory.mktemp("store"))},
            "servers": [
                {"name": "db", "hostname": "db01.shop.test", "domain": "shop-db",
                 "nics": [{"network": "lan", "ip": "10.0.0.11", "mac": "52:54:00:00:00:11"}],
                 "dumps": [
                     {"name": "invoices", "kind": "postgres", "database": "shop",
                      "backup": {"s3": {**s3, "bucket": "lmo-plain", "prefix": "team/"}, "name": INVOICES,
                                 "identity_file": str(age_identity)}},
                     {"name": "crm", "kind": "mariadb", "database": "crm",
                      "backup": {"s3": {**s3, "bucket": "lmo-vault"}, "name": CRM,
                                 "identity_file": str(gpg.key_file)}}]},
                {"name": "app", "hostname": "app01.shop.test", "domain": "shop-app",
                 "nics": [{"network": "lan", "ip": "10.0.0.12", "mac": "52:54:00:00:00:12"}],
                 "dumps": [{"name": "uploads", "kind": "files", "path": "/srv/uploads",
                            "backup": {"directory": str(uploads), "name": UPLOADS}}]}]}
        path = tmp_path_factory.mktemp("spec") / f"{name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    yield {"admin": admin, "uploads": uploads, "spec": spec, "reader": reader, "deleter": deleter}


def fingerprints(world) -> list:
    return [bucket_fingerprint(world["admin"], "lmo-plain"), bucket_fingerprint(world["admin"], "lmo-vault"),
            directory_fingerprint(world["uploads"])]


def test_index_catalogs_every_backup_with_time_size_and_the_storage_checksum(world) -> None:
    env = load_environment(world["spec"](world["reader"]))
    results = {(r.server, r.source): r for r in index(env)}
    assert {key: (len(r.added), r.unchanged, r.ignored) for key, r in results.items()} == {
        ("db", "invoices"): (5, 0, []), ("db", "crm"): (5, 0, []), ("app", "uploads"): (5, 0, [])}
    with store_for(env) as store:
        records = store.catalog.list("db", "invoices")
        assert [r.taken_at for r in records] == [T0 + timedelta(hours=h) for h in reversed(HOURS)]
        for record in records:
            body = world["admin"].get_object(Bucket="lmo-plain", Key=record.origin.split("/", 3)[3])["Body"].read()
            assert (record.size, record.checksum) == (len(body), "md5:" + hashlib.md5(body).hexdigest())
            assert (record.compression, record.encryption, record.collector) == ("zstd", "age", "index")
        crm = store.catalog.list("db", "crm")
        assert {(r.compression, r.encryption) for r in crm} == {("xz", "gpg")}
        uploads = store.catalog.list("app", "uploads")
        assert {(r.compression, r.encryption, r.checksum.split(":")[0]) for r in uploads} == {("gzip", "none", "mtime")}
        # the timeline and a restore's choice see them like collected dumps
        hours = store.catalog.hours_with_all([("db", "invoices"), ("db", "crm"), ("app", "uploads")],
                                             T0, T0 + timedelta(days=1))
        assert hours == [T0 + timedelta(hours=h) for h in HOURS]
        assert store.catalog.newest_good_at("db", "crm", T0 + timedelta(hours=3, minutes=59)).taken_at \
            == T0 + timedelta(hours=2)
    again = index(env)
    assert [(len(r.added), r.unchanged) for r in again] == [(0, 5)] * 3


def test_every_backup_streams_back_to_its_plaintext(world) -> None:
    spec = world["spec"](world["reader"])
    env = load_environment(spec)
    index(env)
    sources = {(s.name): s for server in env.servers for s in server.dumps}
    with store_for(env) as store:
        for record in store.catalog.list():
            with open_record(record, None, sources[record.source].backup) as plain:
                hour = int((record.taken_at - T0).total_seconds() // 3600)
                assert stream_bytes(plain) == content(record.source, hour), record.label


def test_nothing_is_written_to_any_location(world) -> None:
    before = fingerprints(world)
    for credentials in (world["reader"], world["deleter"]):       # the delete probe of both
        env = load_environment(world["spec"](credentials))
        index(env)
        sources = {s.name: s for server in env.servers for s in server.dumps}
        with store_for(env) as store:
            for record in store.catalog.list():
                with open_record(record, None, sources[record.source].backup) as plain:
                    stream_bytes(plain)
        check_storage(env)
        assert fingerprints(world) == before


def test_check_storage_flags_no_versioning_a_missing_hour_and_credentials_that_could_delete(world) -> None:
    now = T0 + timedelta(hours=5, minutes=20)
    safe = {(r.server, r.source): r for r in check_storage(load_environment(world["spec"](world["reader"])), now)}
    invoices, crm, uploads = safe["db", "invoices"], safe["db", "crm"], safe["app", "uploads"]
    assert (invoices.backups, invoices.newest, invoices.versioning) == (5, T0 + timedelta(hours=5), "never enabled")
    assert invoices.gaps == [(T0 + timedelta(hours=2), T0 + timedelta(hours=4), 1)]
    assert invoices.can_delete is False and "cannot delete objects" in invoices.delete_probe
    assert any("versioning is never enabled" in p for p in invoices.problems)
    assert (crm.versioning, crm.object_lock, crm.can_delete) == ("enabled", "governance, 30 days", False)
    assert [p for p in crm.problems if "missing" not in p] == []
    assert uploads.versioning.startswith("n/a") and uploads.can_delete is True    # root may write the folder
    risky = {(r.server, r.source): r for r in check_storage(load_environment(world["spec"](world["deleter"])), now)}
    assert risky["db", "invoices"].can_delete is True
    assert risky["db", "crm"].can_delete is True and "permanently delete object versions" in risky["db", "crm"].delete_probe
    assert any("could permanently delete" in p for p in risky["db", "crm"].problems)
    late = check_storage(load_environment(world["spec"](world["reader"])), T0 + timedelta(hours=9))
    assert all(any("old (one expected every 60 min)" in p for p in r.problems) for r in late)


def test_the_command_lines(world) -> None:
    spec = world["spec"](world["reader"])
    indexed = labmgr("dumps", "index", str(spec))
    assert indexed.returncode == 0, indexed.stderr
    assert "db/invoices at s3://lmo-plain/team/: 5 backups, 5 new" in indexed.stdout
    listed = json.loads(labmgr("dumps", "list", str(spec), "--json").stdout)
    assert {d["origin"].split("/")[2] for d in listed if d["source"] != "uploads"} == {"lmo-plain", "lmo-vault"}
    checked = labmgr("dumps", "check-storage", str(spec), "--json")
    assert checked.returncode == 1       # the storage has problems
    assert {r["source"]: r["can_delete"] for r in json.loads(checked.stdout)} == \
        {"invoices": False, "crm": False, "uploads": True}
    bad = spec.read_text().replace("shop-%Y-%m-%d_%H%M", "shop-%Y-%m-%d_%I%M")
    spec.write_text(bad)
    line = one_line_error(labmgr("dumps", "index", str(spec)))
    assert "%I" in line and f"{spec.name}:" in line


def test_a_replaced_or_removed_backup_is_refused_then_reindexed(world, s3server, tmp_path) -> None:
    admin = world["admin"]
    admin.create_bucket(Bucket="lmo-churn")
    age_identity, recipient = age_keys(tmp_path)
    key = "team/" + T0.strftime("shop/%Y/%m/%d/shop-%Y-%m-%d_%H%M.pgdump.zst.age")
    admin.put_object(Bucket="lmo-churn", Key=key, Body=seal(b"first", "zstd", "age", age_recipient=recipient))
    text = world["spec"](world["reader"], name="churn").read_text().replace("lmo-plain", "lmo-churn").replace(
        str(world["uploads"]), str(tmp_path)).replace(INVOICES.split("/")[0] + "/", "shop/", 1)
    path = tmp_path / "churn.yaml"
    path.write_text(text.replace(str(age_keys.__name__), "x").replace("backups.age", "backups.age"))
    spec = yaml.safe_load(path.read_text())
    spec["servers"][0]["dumps"][0]["backup"]["identity_file"] = str(age_identity)
    spec["servers"][0]["dumps"] = spec["servers"][0]["dumps"][:1]
    spec["servers"] = spec["servers"][:1]
    path.write_text(yaml.safe_dump(spec))
    env = load_environment(path)
    backup = env.servers[0].dumps[0].backup
    index(env)
    with store_for(env) as store:
        [record] = store.catalog.list()
    admin.put_object(Bucket="lmo-churn", Key=key, Body=seal(b"second", "zstd", "age", age_recipient=recipient))
    with pytest.raises(DumpError, match="PreconditionFailed"):
        with open_record(record, None, backup) as plain:
            stream_bytes(plain)
    [result] = index(env)
    assert len(result.added) == 1
    with store_for(env) as store:
        [record] = store.catalog.list()
    with open_record(record, None, backup) as plain:
        assert stream_bytes(plain) == b"second"
    admin.delete_object(Bucket="lmo-churn", Key=key)
    [result] = index(env)
    assert [r.label for r in result.gone] == [record.label]
    with store_for(env) as store:
        assert store.catalog.get(record.id).note == GONE
        assert store.catalog.newest_good_at("db", "invoices", T0 + timedelta(hours=1)) is None


def test_a_missing_or_wrong_key_is_one_clear_error(world, tmp_path) -> None:
    env = load_environment(world["spec"](world["reader"]))
    index(env)
    crm = env.servers[0].dumps[1].backup
    with store_for(env) as store:
        record = store.catalog.list("db", "crm")[0]
    with pytest.raises(DumpError, match="encrypted and no GnuPG key was given"):
        with open_record(record, None, crm.model_copy(update={"identity_file": None})) as plain:
            stream_bytes(plain)
    other = Gpg(tmp_path)
    with pytest.raises(DumpError, match="cannot decrypt .* with gpg"):
        with open_record(record, None, crm.model_copy(update={"identity_file": other.key_file})) as plain:
            stream_bytes(plain)


def test_the_drill_and_history_include_the_storage(world, tmp_path) -> None:
    """A drill checks the storage before it touches a lab (here it then finds no snapshot: exit 2)."""
    spec = world["spec"](world["reader"], name="lmo-drill")
    (spec.parent / "probes.yaml").write_text(yaml.safe_dump({"probes": [
        {"name": "db-port", "kind": "tcp", "server": "db", "port": 5432}]}))
    plan = spec.parent / "drill.yaml"
    plan.write_text(yaml.safe_dump({"environment": spec.name, "probes": "probes.yaml", "lab_name": "lmo-drill",
                                    "snapshot": "20000101T000000Z",
                                    "notify": {"junit": str(tmp_path / "drill.xml")}}))
    drill = labmgr("run", str(plan))
    assert drill.returncode == 2 and "environment lmo-drill has no snapshot" in drill.stderr, drill.stderr
    junit = (tmp_path / "drill.xml").read_text()
    assert "storage: " in junit          # a stage of the drill, timed like the others
    shown = labmgr("history", str(spec))
    assert "storage db/invoices at s3://lmo-plain/team/" in shown.stdout and "1 missing" in shown.stdout
    assert "storage db/crm at s3://lmo-vault/" in shown.stdout and "cannot delete" in shown.stdout
    assert "db/invoices: bucket versioning is never enabled" in shown.stderr
    assert shown.returncode == 1


def test_a_local_copy_only_with_cache(world, tmp_path) -> None:
    spec = world["spec"](world["reader"], name="cached")
    before = fingerprints(world)
    index(load_environment(spec))
    with store_for(load_environment(spec)) as store:
        assert not (store.root / "cache").exists()          # indexing copies nothing
    indexed = labmgr("dumps", "index", "--cache", str(spec))
    assert indexed.returncode == 0, indexed.stderr
    assert fingerprints(world) == before
    # the copies are what a restore reads: keys that no longer work do not matter any more
    broken = tmp_path / "broken.ini"
    broken.write_text("[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n")
    offline = tmp_path / "offline.yaml"
    offline.write_text(spec.read_text().replace(str(world["reader"]), str(broken)))
    env = load_environment(offline)
    sources = {s.name: s for server in env.servers for s in server.dumps}
    with store_for(env) as store:
        assert len([c for c in (store.root / "cache").rglob("*") if c.is_file()]) == 15
        for record in store.catalog.list():
            with store.open_plain(record, None, sources[record.source].backup) as plain:
                hour = int((record.taken_at - T0).total_seconds() // 3600)
                assert stream_bytes(plain) == content(record.source, hour)
        index_again = labmgr("dumps", "index", str(offline))     # the broken keys are refused by S3 itself
        assert "InvalidAccessKeyId" in one_line_error(index_again)
