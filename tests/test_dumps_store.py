"""The dump store: real files in tmp_path, real SQLite, real age keys (pyrage)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyrage
import pytest

from labmgr.dumps import DumpError, DumpRecord, DumpStore, import_dir, plan_prune, prune, store_for, verify
from labmgr.dumps import importer, store as store_module
from labmgr.errors import LabmgrError
from labmgr.spec.model import (DumpSettings, DumpSource, Encryption, Environment, Network, Nic, Retention,
                               Server)

UTC = timezone.utc
T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
MIB = 1 << 20


def environment(store: Path | None, recipients: list[str] | None = None) -> Environment:
    def server(name: str, n: int, dumps: list[DumpSource]) -> Server:
        return Server(name=name, hostname=f"{name}01.shop.test", domain=f"shop-{name}",
                      nics=[Nic(network="lan", ip=f"10.0.0.{n}", mac=f"52:54:00:00:00:{n:02x}")], dumps=dumps)

    return Environment(
        name="shop", networks=[Network(name="lan", cidr="10.0.0.0/24")],
        servers=[
            server("db", 11, [DumpSource(name="invoices", kind="postgres", database="invoices"),
                              DumpSource(name="shop", kind="mariadb", database="shop")]),
            server("app", 12, [DumpSource(name="uploads", kind="files", path="/srv/uploads")]),
        ],
        dumps=DumpSettings(store=store, encryption=Encryption(recipients=recipients) if recipients else None))


def chunks(total: int, size: int = 64 * 1024, seed: bytes = b"") -> list[bytes]:
    data = (seed + b"pg_dump custom format, row after row. ") * (total // 38 + 1)
    return [data[i:i + size] for i in range(0, total, size)]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_below(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and not p.name.startswith("catalog.sqlite"))


@pytest.fixture
def store(tmp_path):
    with DumpStore(tmp_path / "store") as s:
        yield s


@pytest.fixture
def keys(tmp_path):
    identity = pyrage.x25519.Identity.generate()
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(f"# created: for the test\n# public key: {identity.to_public()}\n{identity}\n")
    return str(identity.to_public()), identity_file


# writing ---------------------------------------------------------------------
def test_write_streams_into_the_layout_with_manifest_and_catalog_row(store):
    parts = chunks(300_000)
    plain = b"".join(parts)
    record = store.write("db", "invoices", "postgres", T0 + timedelta(microseconds=700), iter(parts),
                         collector="ssh")

    expected = store.root / "db/invoices/2026-11-21/db--invoices--20261121T080000Z.pgdump"
    assert record.path == expected and expected.read_bytes() == plain
    assert (record.size, record.sha256, record.content_sha256) == (len(plain), sha(plain), sha(plain))
    assert record.taken_at == T0 and record.state == "unverified" and not record.encrypted
    assert files_below(store.root) == ["db/invoices/2026-11-21/db--invoices--20261121T080000Z.pgdump",
                                       "db/invoices/2026-11-21/db--invoices--20261121T080000Z.pgdump.json"]

    manifest = json.loads(expected.with_name(expected.name + ".json").read_text())
    assert manifest["server"] == "db" and manifest["source"] == "invoices" and manifest["kind"] == "postgres"
    assert manifest["taken_at"] == "2026-11-21T08:00:00Z"
    assert manifest["size"] == len(plain) and manifest["sha256"] == sha(plain) == manifest["content_sha256"]
    assert manifest["encrypted"] is False and manifest["recipients"] == []
    assert manifest["collector"] == "ssh" and manifest["collected_at"].endswith("Z") and manifest["labmgr"]

    assert store.catalog.get(record.id) == record
    assert (store.root / "catalog.sqlite").is_file()
    assert store.catalog.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("kind, ext", [("mariadb", "sql"), ("files", "tar")])
def test_extension_follows_the_kind(store, kind, ext):
    record = store.write("db", "x", kind, T0, [b"data"], collector="agent")
    assert record.path.name == f"db--x--20261121T080000Z.{ext}"


@pytest.mark.parametrize("encrypted", [False, True])
def test_write_never_holds_the_dump_in_memory(store, keys, encrypted):
    block = os.urandom(MIB)

    def produce():
        for _ in range(48):
            yield block

    tracemalloc.start()
    try:
        record = store.write("db", "invoices", "postgres", T0, produce(), collector="agent",
                             encrypt_to=[keys[0]] if encrypted else None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert record.path.stat().st_size >= 48 * MIB
    assert peak < 8 * MIB, f"peak Python memory {peak / MIB:.1f} MiB while storing 48 MiB"


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_producer_failing_half_way_leaves_nothing(store, keys, encrypted):
    def produce():
        yield from chunks(200_000)
        raise ConnectionResetError("ssh: connection to db01 lost")
        yield b"never"

    with pytest.raises(ConnectionResetError, match="connection to db01 lost"):
        store.write("db", "invoices", "postgres", T0, produce(), collector="ssh",
                    encrypt_to=[keys[0]] if encrypted else None)
    assert files_below(store.root) == []
    assert store.catalog.list() == [] and store.catalog.find("db", "invoices", T0) is None
    # and the same dump can then be written
    assert store.write("db", "invoices", "postgres", T0, [b"ok"], collector="ssh").size == 2


def test_a_full_disk_is_a_dump_error_and_leaves_nothing(store, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module.os, "fsync", full)
    with pytest.raises(DumpError, match=r"cannot write .*db--invoices--20261121T080000Z.pgdump: No space left"):
        store.write("db", "invoices", "postgres", T0, chunks(100_000), collector="ssh")
    assert files_below(store.root) == [] and store.catalog.count() == 0


def test_a_dump_is_stored_once(store):
    store.write("db", "invoices", "postgres", T0, [b"one"], collector="ssh")
    with pytest.raises(DumpError, match=r"db/invoices 2026-11-21T08:00Z is already stored"):
        store.write("db", "invoices", "postgres", T0, [b"two"], collector="ssh")
    assert store.catalog.list()[0].path.read_bytes() == b"one"


def test_bad_kind_collector_or_recipient_are_errors(store):
    with pytest.raises(DumpError, match="'oracle' is not a dump kind"):
        store.write("db", "x", "oracle", T0, [b""], collector="ssh")
    with pytest.raises(DumpError, match="'ftp' is not a collector"):
        store.write("db", "x", "files", T0, [b""], collector="ftp")
    with pytest.raises(DumpError, match="is not an age recipient"):
        store.write("db", "x", "files", T0, [b""], collector="ssh", encrypt_to=["age1notakey"])
    assert files_below(store.root) == []


def test_store_for_uses_the_spec_or_the_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LABMGR_STATE_DIR", str(tmp_path / "state"))
    with store_for(environment(None)) as default:
        assert default.root == tmp_path / "state" / "dumps" / "shop"
    with store_for(environment(tmp_path / "elsewhere")) as chosen:
        assert chosen.root == tmp_path / "elsewhere"
        assert (chosen.root / "catalog.sqlite").is_file()


# encryption ------------------------------------------------------------------
def test_encryption_round_trip(store, keys, tmp_path):
    recipient, identity_file = keys
    parts = chunks(500_000, seed=b"SECRET-INVOICE ")
    plain = b"".join(parts)
    record = store.write("db", "invoices", "postgres", T0, parts, encrypt_to=[recipient], collector="agent")

    assert record.path.name == "db--invoices--20261121T080000Z.pgdump.age"
    stored = record.path.read_bytes()
    assert stored.startswith(b"age-encryption.org/v1") and b"SECRET-INVOICE" not in stored
    assert record.encrypted and record.sha256 == sha(stored) and record.size == len(stored)
    assert record.content_sha256 == sha(plain)
    manifest = json.loads(record.manifest_path.read_text())
    assert manifest["encrypted"] is True and manifest["recipients"] == [recipient]
    assert manifest["content_sha256"] == sha(plain) != manifest["sha256"]

    with store.open_plain(record, identity_file) as f:
        assert f.read() == plain
    assert [p.name for p in store.root.iterdir() if p.is_file() and not p.name.startswith("catalog")] == []

    with pytest.raises(DumpError, match=r"db/invoices 2026-11-21T08:00Z is encrypted and no age identity"):
        with store.open_plain(record, None):
            pass
    stranger = tmp_path / "stranger.txt"
    stranger.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    with pytest.raises(DumpError, match=r"cannot decrypt db/invoices 2026-11-21T08:00Z") as caught:
        with store.open_plain(record, stranger):
            pass
    assert "identity" in str(caught.value) and "\n" not in str(caught.value)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n")
    with pytest.raises(DumpError, match="holds no age identity"):
        with store.open_plain(record, empty):
            pass


def test_open_plain_of_a_plain_dump_and_of_a_missing_file(store):
    record = store.write("db", "invoices", "postgres", T0, [b"plain"], collector="ssh")
    with store.open_plain(record) as f:
        assert f.read() == b"plain"
    record.path.unlink()
    with pytest.raises(DumpError, match="db/invoices 2026-11-21T08:00Z: the dump file .* is missing"):
        with store.open_plain(record):
            pass


# catalog queries -------------------------------------------------------------
def fill(store: DumpStore, hours: int, cells=(("db", "invoices", "postgres"), ("app", "uploads", "files"))):
    for hour in range(hours):
        for server, source, kind in cells:
            store.write(server, source, kind, T0 + timedelta(hours=hour), [f"{server}{hour}".encode()],
                        collector="agent")


def test_list_filters_and_orders_newest_first(store):
    fill(store, 4)
    everything = store.catalog.list()
    assert len(everything) == 8
    assert [r.taken_at for r in everything] == sorted((r.taken_at for r in everything), reverse=True)
    db = store.catalog.list(server="db", since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2))
    assert [(r.server, r.taken_at.hour) for r in db] == [("db", 10), ("db", 9)]
    assert [r.source for r in store.catalog.list(source="uploads")] == ["uploads"] * 4
    with pytest.raises(DumpError, match="no dump with id 999"):
        store.catalog.get(999)


def test_newest_good_at_skips_bad_dumps(store):
    fill(store, 4, cells=[("db", "invoices", "postgres")])
    by_hour = {r.taken_at.hour: r for r in store.catalog.list()}
    at = T0 + timedelta(hours=2, minutes=30)
    assert store.catalog.newest_good_at("db", "invoices", at).id == by_hour[10].id
    store.catalog.mark(by_hour[10].id, "bad", "sha256 mismatch")
    assert store.catalog.newest_good_at("db", "invoices", at).id == by_hour[9].id
    store.catalog.mark(by_hour[9].id, "good")
    assert store.catalog.newest_good_at("db", "invoices", at).state == "good"
    assert store.catalog.newest_good_at("db", "invoices", T0 - timedelta(seconds=1)) is None
    assert store.catalog.newest_good_at("db", "nothing", at) is None
    marked = store.catalog.get(by_hour[10].id)
    assert marked.state == "bad" and marked.note == "sha256 mismatch" and marked.verified_at is not None
    with pytest.raises(DumpError, match="'fine' is not a dump state"):
        store.catalog.mark(by_hour[9].id, "fine")


def test_timeline_groups_by_hour_and_cell(store, keys):
    fill(store, 3)
    store.write("db", "invoices", "postgres", T0 + timedelta(hours=1, minutes=30), [b"extra"], collector="ssh",
                encrypt_to=[keys[0]])
    records = {(r.server, r.taken_at): r for r in store.catalog.list()}
    store.catalog.mark(records[("db", T0)].id, "good")
    store.catalog.mark(records[("app", T0 + timedelta(hours=1))].id, "bad")

    grid = store.catalog.timeline(T0, T0 + timedelta(hours=2))     # [since, until)
    assert sorted(grid) == [T0, T0 + timedelta(hours=1)]
    first, second = grid[T0], grid[T0 + timedelta(hours=1)]
    assert set(first) == {("db", "invoices"), ("app", "uploads")}
    assert first[("db", "invoices")].verified and not first[("app", "uploads")].verified
    assert first[("db", "invoices")].exists and not first[("db", "invoices")].has_bad
    assert second[("app", "uploads")].has_bad
    db = second[("db", "invoices")]
    assert (db.dumps, db.good, db.bad, db.encrypted) == (2, 0, 0, 1)
    assert store.catalog.timeline(T0 + timedelta(days=1), T0 + timedelta(days=2)) == {}

    hours = store.catalog.hours_with_all([("db", "invoices"), ("app", "uploads")], T0, T0 + timedelta(hours=3))
    assert hours == [T0, T0 + timedelta(hours=2)]      # hour 1: app's only dump is bad


# import ----------------------------------------------------------------------
def test_import_links_hashes_and_rescans_unchanged_directories_without_hashing(tmp_path, monkeypatch):
    env = environment(tmp_path / "store")
    incoming = tmp_path / "incoming"
    (incoming / "2026-11-21").mkdir(parents=True)
    contents = {}
    for hour in range(60):
        stamp = (T0 + timedelta(hours=hour)).strftime("%Y%m%dT%H%M%SZ")
        for name in (f"db--invoices--{stamp}.pgdump", f"app--uploads--{stamp}.tar"):
            contents[name] = f"{name} ".encode() * 2000
            (incoming / "2026-11-21" / name).write_bytes(contents[name])
    (incoming / ".db--invoices--20261122T000000Z.pgdump.tmp").write_bytes(b"still being written")

    started = time.perf_counter()
    first = import_dir(env, incoming)
    first_seconds = time.perf_counter() - started
    assert (len(first.added), first.skipped_unchanged, first.rejected) == (120, 0, [])

    with store_for(env) as s:
        records = s.catalog.list()
        assert len(records) == 120
        for record in records:
            assert record.collector == "import" and not record.encrypted
            assert record.sha256 == record.content_sha256 == sha(contents[record.path.name])
            source = incoming / "2026-11-21" / record.path.name
            assert record.path.samefile(source)        # same filesystem: a hard link, not a copy
            assert json.loads(record.manifest_path.read_text())["collector"] == "import"
        assert record.path.relative_to(s.root).parts[:2] in {("db", "invoices"), ("app", "uploads")}

    def no_hashing(*args, **kwargs):
        raise AssertionError("an unchanged file was read again")

    monkeypatch.setattr(importer, "sha256_file", no_hashing)
    monkeypatch.setattr(store_module.streams, "sha256_file", no_hashing)
    monkeypatch.setattr(store_module.streams, "file_chunks", no_hashing)
    started = time.perf_counter()
    again = import_dir(env, incoming)
    again_seconds = time.perf_counter() - started
    assert (again.added, again.skipped_unchanged, again.rejected) == ([], 120, [])
    assert again_seconds < first_seconds
    with store_for(env) as s:
        assert s.catalog.count() == 120


def test_import_copies_across_filesystems_and_re_takes_a_touched_identical_file(tmp_path, monkeypatch):
    env = environment(tmp_path / "store")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    dump = incoming / "db--shop--20261121T080000Z.sql"
    dump.write_bytes(b"INSERT INTO orders VALUES (1);\n")
    monkeypatch.setattr(store_module, "_try_link", lambda source, target: False)   # as if on another disk
    result = import_dir(env, incoming)
    stored = result.added[0]
    assert stored.path.read_bytes() == dump.read_bytes() and not stored.path.samefile(dump)

    os.utime(dump, ns=(time.time_ns(), time.time_ns() + 10**9))     # touched, same bytes
    again = import_dir(env, incoming)
    assert (again.added, again.skipped_unchanged, again.rejected) == ([], 1, [])

    dump.write_bytes(b"INSERT INTO orders VALUES (2);\n")            # rewritten in place
    changed = import_dir(env, incoming)
    assert changed.added == [] and len(changed.rejected) == 1
    assert "db/shop 2026-11-21T08:00Z is already stored" in changed.rejected[0][1]
    assert "differs" in changed.rejected[0][1]


def test_import_rejects_bad_names_with_reasons(tmp_path):
    env = environment(tmp_path / "store")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    files = {
        "notes.txt": "name does not match <server>--<source>--<YYYYMMDDTHHMMSSZ>.<ext>[.age]",
        "db--invoices--2026-11-21T08:00.pgdump": "name does not match",
        "db--invoices--20261321T080000Z.pgdump": "'20261321T080000Z' is not a valid UTC time",
        "web--invoices--20261121T080000Z.pgdump": "environment shop has no server 'web' (servers: db, app)",
        "db--orders--20261121T080000Z.pgdump": "server db has no dump source 'orders' (sources: invoices, shop)",
        "db--invoices--20261121T080000Z.sql": ("extension .sql does not fit db/invoices, a postgres dump "
                                              "(expected .pgdump or .pgdump.age)"),
        "app--uploads--20261121T080000Z.zip": "extension .zip does not fit app/uploads",
        "db--shop--20261121T080000Z.sql": "empty file",
    }
    for name in files:
        (incoming / name).write_bytes(b"" if name.startswith("db--shop") else b"data")
    (incoming / "db--invoices--20261121T090000Z.pgdump").write_bytes(b"good one")
    (incoming / "db--invoices--20261121T090000Z.pgdump.json").write_text("{}")     # a manifest: not a dump

    result = import_dir(env, incoming)
    assert [r.path.name for r in result.added] == ["db--invoices--20261121T090000Z.pgdump"]
    reasons = {path.name: reason for path, reason in result.rejected}
    assert set(reasons) == set(files)
    for name, expected in files.items():
        assert expected in reasons[name], (name, reasons[name])
        assert "\n" not in reasons[name]
    # rejected files are looked at again next time (they may be renamed), still without hashing
    assert len(import_dir(env, incoming).rejected) == len(files)


def test_import_refuses_a_missing_directory_or_the_store_itself(tmp_path):
    env = environment(tmp_path / "store")
    with pytest.raises(DumpError, match="is not a directory"):
        import_dir(env, tmp_path / "nowhere")
    (tmp_path / "store" / "db").mkdir(parents=True)
    with pytest.raises(DumpError, match="is inside the dump store"):
        import_dir(env, tmp_path / "store" / "db")


def test_import_encrypts_plaintext_when_the_spec_has_recipients_and_keeps_age_files(tmp_path, keys):
    recipient, identity_file = keys
    env = environment(tmp_path / "store", recipients=[recipient])
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "db--invoices--20261121T080000Z.pgdump").write_bytes(b"plain invoices")
    sealed = incoming / "db--invoices--20261121T090000Z.pgdump.age"
    with open(sealed, "wb") as out:
        pyrage.encrypt_io(io.BytesIO(b"sealed invoices"), out, [pyrage.x25519.Recipient.from_str(recipient)])
    result = import_dir(env, incoming)
    assert result.rejected == []
    plain_one, sealed_one = sorted(result.added, key=lambda r: r.taken_at)
    assert plain_one.encrypted and plain_one.path.name.endswith(".pgdump.age")
    assert b"plain invoices" not in plain_one.path.read_bytes()
    assert plain_one.content_sha256 == sha(b"plain invoices")
    assert sealed_one.encrypted and sealed_one.content_sha256 is None
    with store_for(env) as s:
        for record, plain in ((plain_one, b"plain invoices"), (sealed_one, b"sealed invoices")):
            with s.open_plain(record, identity_file) as f:
                assert f.read() == plain


# verify ----------------------------------------------------------------------
def test_verify_detects_truncation_tampering_and_missing_files(tmp_path):
    env = environment(tmp_path / "store")
    with store_for(env) as s:
        fill(s, 3)
        records = {(r.server, r.taken_at.hour): r for r in s.catalog.list()}
        truncated, tampered, missing = records[("db", 8)], records[("db", 9)], records[("app", 10)]
        truncated.path.write_bytes(truncated.path.read_bytes()[:-1])
        tampered.path.write_bytes(tampered.path.read_bytes()[::-1])
        missing.path.unlink()

    bad = verify(env)
    notes = {r.label: r.note for r in bad}
    assert notes == {
        "db/invoices 2026-11-21T08:00Z": "sha256 mismatch (file was changed or truncated: 2 bytes, 3 stored)",
        "db/invoices 2026-11-21T09:00Z": "sha256 mismatch (file was changed or truncated)",
        "app/uploads 2026-11-21T10:00Z": f"file is missing ({missing.path})",
    }
    with store_for(env) as s:
        states = {r.label: r.state for r in s.catalog.list()}
        assert sorted(label for label, state in states.items() if state == "bad") == sorted(notes)
        assert list(states.values()).count("good") == 3
        assert all(r.verified_at is not None for r in s.catalog.list())
        assert s.catalog.newest_good_at("db", "invoices", T0 + timedelta(hours=1)) is None


# retention -------------------------------------------------------------------
def synthetic(server: str, source: str, start: datetime, hours: int, bad_at=()) -> list[DumpRecord]:
    return [DumpRecord(i, server, source, "postgres", start + timedelta(hours=i), 1, "x", "x", False,
                       Path(f"/nowhere/{server}-{source}-{i}"), state="bad" if i in bad_at else "unverified")
            for i in range(hours)]


def test_plan_prune_keeps_hours_then_days_and_the_newest_usable():
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    start = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    records = synthetic("db", "invoices", start, 10 * 24 + 12)              # hourly up to 11:00 on the 30th
    doomed = plan_prune(records, Retention(hourly_hours=24, daily_days=5), now)
    kept = sorted({id(r) for r in records} - {id(r) for r in doomed})
    kept_times = sorted(r.taken_at for r in records if id(r) in kept)

    hourly = [t for t in kept_times if t > now - timedelta(hours=24)]
    assert len(hourly) == 23                                     # 12:00..22:00 on the 29th, 00:00..11:00 on the 30th
    daily = [t for t in kept_times if t <= now - timedelta(hours=24)]
    # the newest of each day younger than 5 days (the 29th's 23:00 is inside the hourly window anyway)
    assert daily == [datetime(2026, 11, d, 23, tzinfo=UTC) for d in (25, 26, 27, 28)]
    assert len(doomed) + len(kept_times) == len(records)
    assert doomed == sorted(doomed, key=lambda r: r.taken_at)


def test_plan_prune_prefers_a_usable_dump_of_the_day_and_never_drops_the_newest_good():
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    day = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    records = synthetic("db", "invoices", day, 24, bad_at={23})
    kept = {r.taken_at for r in records} - {r.taken_at for r in plan_prune(records, Retention(hourly_hours=1,
                                                                                                daily_days=10), now)}
    assert kept == {day + timedelta(hours=22)}                      # 23:00 is bad; 22:00 is the day's newest usable

    old = synthetic("db", "shop", datetime(2026, 1, 1, tzinfo=UTC), 3)
    old[0].state = "good"
    doomed = plan_prune(old, Retention(hourly_hours=1, daily_days=1), now)
    assert {r.taken_at.hour for r in doomed} == {1}                 # 02:00 newest usable, 00:00 newest verified

    assert plan_prune([], Retention(), now) == []
    only_bad = synthetic("app", "uploads", datetime(2026, 1, 1, tzinfo=UTC), 2, bad_at={0, 1})
    assert len(plan_prune(only_bad, Retention(hourly_hours=1, daily_days=1), now)) == 2


def test_prune_removes_files_manifests_and_rows(store):
    fill(store, 30, cells=[("db", "invoices", "postgres")])
    now = T0 + timedelta(hours=29, minutes=30)
    deleted = prune(store, Retention(hourly_hours=2, daily_days=0), now)
    assert len(deleted) == 28
    left = store.catalog.list()
    assert [r.taken_at for r in left] == [T0 + timedelta(hours=29), T0 + timedelta(hours=28)]
    assert len(files_below(store.root)) == 4
    assert not (store.root / "db/invoices/2026-11-21").exists()    # emptied day directories go too
    for record in deleted:
        assert not record.path.exists() and not record.manifest_path.exists()


def test_errors_are_labmgr_errors():
    assert issubclass(DumpError, LabmgrError)
