"""`dumps index --cache`: a local copy of each indexed backup, only when asked for.

The copy lives in the store (``<store>/cache/<server>/<source>/<origin hash>-<name>``), is
read from the location once (the storage's checks apply: If-Match, size, MD5) and
then used by restores instead of the location. It is the backup's bytes as they are
(still compressed and encrypted), written through a partial file.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from ..dumps.record import DumpRecord
from ..dumps.streams import BLOCK
from ..journal import intent
from ..spec.backups import BackupSource
from .where import location_of


def cache_path(store_root: Path, record: DumpRecord) -> Path:
    tag = hashlib.sha256(record.origin.encode()).hexdigest()[:16]
    return Path(store_root, "cache", record.server, record.source, f"{tag}-{record.path.name}")


def cached(store_root: Path, record: DumpRecord) -> Path | None:
    """The cached copy of ``record``, when there is one of its size."""
    path = cache_path(store_root, record)
    try:
        return path if path.stat().st_size == record.size else None
    except OSError:
        return None


def fill(store_root: Path, record: DumpRecord, backup: BackupSource) -> Path:
    target = cache_path(store_root, record)
    if cached(store_root, record):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    location = location_of(backup)
    with intent("files", paths=[str(partial)], what=f"a partial cached backup {partial.name}"):
        try:
            with location.open(location.name_of(record.origin), record.size, record.checksum) as raw, \
                    open(partial, "xb") as out:
                while block := raw.read(BLOCK):
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target
