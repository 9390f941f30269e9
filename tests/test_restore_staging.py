"""A stored dump is checked against its catalog sha256 before a restore uses it (one file hash: dumps.streams)."""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timezone

import pytest

from labmgr.dumps import DumpStore
from labmgr.dumps.errors import DumpError
from labmgr.lab.restore import _check_stored, _copy_hashing

T0 = datetime(2026, 11, 21, 8, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path):
    with DumpStore(tmp_path / "store") as s:
        yield s


def test_an_intact_dump_passes(store):
    record = store.write("db", "x", "postgres", T0, [b"intact" * 1000], collector="agent")
    _check_stored(store, record)
    assert store.catalog.get(record.id).state == "unverified"


def test_a_changed_dump_is_refused_and_marked_bad(store):
    record = store.write("db", "x", "postgres", T0, [b"intact" * 1000], collector="agent")
    record.path.chmod(0o644)
    record.path.write_bytes(b"tampered" * 1000)
    with pytest.raises(DumpError, match="sha256 mismatch"):
        _check_stored(store, record)
    assert store.catalog.get(record.id).state == "bad"


def test_a_missing_dump_is_refused_and_marked_bad(store):
    record = store.write("db", "x", "postgres", T0, [b"intact"], collector="agent")
    record.path.unlink()
    with pytest.raises(DumpError, match="is missing"):
        _check_stored(store, record)
    assert store.catalog.get(record.id).state == "bad"


def test_a_decrypted_copy_is_hashed_on_the_way(tmp_path):
    data = bytes(range(256)) * 9000
    target = tmp_path / "plain"
    assert _copy_hashing(io.BytesIO(data), target) == hashlib.sha256(data).hexdigest()
    assert target.read_bytes() == data and target.stat().st_mode & 0o777 == 0o600     # plaintext: root's only
