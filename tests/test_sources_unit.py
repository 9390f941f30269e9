"""Name templates and what an extension says, host only (no storage)."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from labmgr.dumps.catalog import Catalog
from labmgr.dumps.errors import DumpError
from labmgr.dumps.plain import decoded
from labmgr.dumps.record import plain_name
from labmgr.sources.template import NameTemplate, TemplateError
from labmgr.spec.backups import BackupSource, split_suffixes

from backups import compress

UTC = timezone.utc


def test_a_team_name_gives_its_time_and_the_prefix_to_list() -> None:
    template = NameTemplate("shop/%Y/%m/%d/shop-%Y-%m-%d_%H%M.sql.gz")
    assert template.match("shop/2026/11/21/shop-2026-11-21_0800.sql.gz") == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    assert template.listing_prefix == "shop/"
    assert template.render(datetime(2026, 11, 21, 8, 0, tzinfo=UTC)) == "shop/2026/11/21/shop-2026-11-21_0800.sql.gz"


@pytest.mark.parametrize("name", [
    "shop/2026/11/21/shop-2026-11-22_0800.sql.gz",     # the folder and the name disagree on the day
    "shop/2026/11/21/shop-2026-11-21_0800.sql",        # another extension
    "shop/2026/11/21/shop-2026-11-21_0800.sql.gz.1",   # a leftover
    "shop/2026/13/21/shop-2026-13-21_0800.sql.gz",     # no month 13
    "other/2026/11/21/shop-2026-11-21_0800.sql.gz",
])
def test_names_that_do_not_fit_are_not_backups(name: str) -> None:
    assert NameTemplate("shop/%Y/%m/%d/shop-%Y-%m-%d_%H%M.sql.gz").match(name) is False


def test_local_times_epoch_seconds_day_of_year_and_wildcards() -> None:
    berlin = NameTemplate("db-%Y%m%dT%H%M.dump.zst", "Europe/Berlin")
    assert berlin.match("db-20261121T0900.dump.zst") == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)    # CET
    assert berlin.match("db-20260721T0900.dump.zst") == datetime(2026, 7, 21, 7, 0, tzinfo=UTC)     # CEST
    assert NameTemplate("crm-%s.sql.xz").match("crm-1795248000.sql.xz") == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    assert NameTemplate("%Y-%j/x-%H.tar").match("2026-325/x-08.tar") == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    star = NameTemplate("*/shop-%y%m%d-%H%M%S-*.pgdump")
    assert star.match("host7/shop-261121-080000-full.pgdump") == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    assert star.match("a/b/shop-261121-080000-full.pgdump") is False     # '*' never crosses a folder
    assert star.listing_prefix == ""
    assert NameTemplate("100%%/shop.sql").match("100%/shop.sql") is True   # no date: the storage's time


@pytest.mark.parametrize("text, why", [
    ("shop-%Y-%m-%d_%I%p.sql", "%I"),
    ("/abs/shop-%Y%m%d.sql", "relative"),
    ("../up/shop-%Y%m%d.sql", "relative"),
    ("shop-%Y-%H.sql", "no day"),
])
def test_templates_labmgr_cannot_read_are_refused(text: str, why: str) -> None:
    with pytest.raises(TemplateError, match=why):
        NameTemplate(text)


@pytest.mark.parametrize("name, expected", [
    ("x.sql.gz", ("gzip", "none")), ("x.sql.zst.age", ("zstd", "age")), ("x.tar.xz.gpg", ("xz", "gpg")),
    ("x.pgdump.age", ("none", "age")), ("x.sql", ("none", "none")), ("x.sql.zstd.asc", ("zstd", "gpg")),
])
def test_compression_and_encryption_from_the_extension(name: str, expected: tuple[str, str]) -> None:
    assert split_suffixes(name) == expected
    assert BackupSource(directory="/srv/b", name=f"%Y%m%d%H-{name}").codecs == expected


def test_given_codecs_win_over_the_extension_and_the_spec_refuses_nonsense() -> None:
    assert BackupSource(directory="/srv/b", name="%Y%m%d-x.bin", compression="zstd", encryption="gpg").codecs \
        == ("zstd", "gpg")
    for bad in ({"name": "x-%Y%m%d.sql"}, {"directory": "/a", "s3": {"bucket": "abc"}, "name": "x"},
                {"directory": "rel", "name": "x"}, {"directory": "/a", "name": "x-%Q"},
                {"directory": "/a", "name": "x", "timezone": "Mars/Base"},
                {"directory": "/a", "name": "x", "compression": "bzip2"}):
        with pytest.raises(ValidationError):
            BackupSource(**bad)


def test_the_media_file_drops_what_encryption_and_compression_added() -> None:
    assert plain_name("shop-2026-11-21_0800.sql.gz.age") == "shop-2026-11-21_0800.sql"
    assert plain_name("files.tar.xz.gpg") == "files.tar"
    assert plain_name("a--b--20261121T080000Z.pgdump.age") == "a--b--20261121T080000Z.pgdump"


def test_a_catalog_of_schema_1_gains_the_columns_of_located_backups(tmp_path) -> None:
    import sqlite3

    old = sqlite3.connect(tmp_path / "catalog.sqlite")
    old.executescript("""
        CREATE TABLE dumps (id INTEGER PRIMARY KEY, server TEXT NOT NULL, source TEXT NOT NULL, kind TEXT NOT NULL,
            taken_at INTEGER NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, content_sha256 TEXT,
            encrypted INTEGER NOT NULL, path TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'unverified',
            verified_at INTEGER, note TEXT NOT NULL DEFAULT '', collector TEXT NOT NULL, collected_at INTEGER,
            recipients TEXT NOT NULL DEFAULT '[]');
        INSERT INTO dumps (server, source, kind, taken_at, size, sha256, encrypted, path, collector)
            VALUES ('db', 'invoices', 'postgres', 1795248000, 5, 'ab', 1, 'db/x.pgdump.age', 'agent');
        PRAGMA user_version=1;""")
    old.close()
    with Catalog(tmp_path) as catalog:
        [record] = catalog.list()
        assert (record.origin, record.compression, record.encryption, record.located) == (None, "none", "age", False)
        assert record.path == tmp_path / "db/x.pgdump.age"
        assert catalog.db.execute("PRAGMA user_version").fetchone()[0] == 2


@pytest.mark.parametrize("compression", ["gzip", "zstd", "xz"])
def test_a_cut_or_damaged_compressed_stream_is_an_error_naming_the_backup(compression: str) -> None:
    data = b"".join(bytes([i % 251]) * (1000 + i) for i in range(300))
    packed = compress(data, compression) + compress(b"next frame", compression)
    with decoded(io.BytesIO(packed), "none", compression, None, "db/x 08:00") as plain:
        assert plain.read() == data + b"next frame"
    for broken in (packed[:len(packed) // 2], packed[:40] + b"\0" * 64 + packed[104:]):
        with pytest.raises(DumpError, match="db/x 08:00"):
            with decoded(io.BytesIO(broken), "none", compression, None, "db/x 08:00") as plain:
                while plain.read(1 << 16):
                    pass
