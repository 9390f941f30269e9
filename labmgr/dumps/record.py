"""A stored dump as the catalog knows it, and its manifest (the JSON file next to it).

The manifest repeats what the catalog holds so that a store directory stays
self-describing: the catalog can be rebuilt from manifests, and a copied dump
carries its checksums with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from .. import __version__
from ..atomic import atomic_write
from ..timeparse import format_point, utc

State = Literal["unverified", "good", "bad"]
STATES = ("unverified", "good", "bad")
COLLECTORS = ("ssh", "agent", "import", "index")


@dataclass
class DumpRecord:
    id: int | None
    server: str
    source: str
    kind: str
    taken_at: datetime                  # UTC
    size: int                           # stored bytes
    sha256: str                         # of the stored bytes (ciphertext when encrypted)
    content_sha256: str | None          # of the plaintext; None when imported already encrypted
    encrypted: bool
    path: Path
    state: State = "unverified"
    verified_at: datetime | None = None
    note: str = ""
    collector: str = "import"
    collected_at: datetime | None = None
    recipients: list[str] = field(default_factory=list)
    # a backup indexed where it is (labmgr/sources/): never in the store, never written or deleted
    origin: str | None = None           # its path or s3://bucket/key
    compression: str = "none"           # none, gzip, zstd, xz
    cipher: str | None = None           # none, age, gpg; None: age when encrypted (the store's own)
    checksum: str | None = None         # what the storage gave: md5:..., etag:..., mtime:...

    @property
    def label(self) -> str:
        """How messages name a dump: ``db/invoices 2026-11-21T08:00Z``."""
        return f"{self.server}/{self.source} {format_point(self.taken_at)}"

    @property
    def located(self) -> bool:
        """Indexed where it is (a team's own backup), not stored by labmgr."""
        return self.origin is not None

    @property
    def identity_key(self) -> str:
        """What names these exact bytes (scan results are kept by it): the sha256 of a stored dump; a
        located backup's origin and the checksum its storage gave."""
        return self.sha256 or f"{self.origin}#{self.checksum}"

    @property
    def encryption(self) -> str:
        return self.cipher or ("age" if self.encrypted else "none")

    @property
    def manifest_path(self) -> Path:
        return self.path.with_name(self.path.name + ".json")


def plain_name(name: str) -> str:
    """A dump's file name without what encryption and compression added (``shop.sql.gz.age`` -> ``shop.sql``)."""
    for suffixes in ((".age", ".gpg", ".pgp", ".asc"), (".gz", ".zst", ".zstd", ".xz")):
        for suffix in suffixes:
            if name.endswith(suffix):
                name = name[:-len(suffix)]
                break
    return name


def manifest(record: DumpRecord) -> dict:
    return {
        "server": record.server,
        "source": record.source,
        "kind": record.kind,
        "taken_at": _iso(record.taken_at),
        "size": record.size,
        "sha256": record.sha256,
        "content_sha256": record.content_sha256,
        "encrypted": record.encrypted,
        "recipients": list(record.recipients),
        "collected_at": _iso(record.collected_at) if record.collected_at else None,
        "collector": record.collector,
        "labmgr": __version__,
    }


def write_manifest(record: DumpRecord) -> Path:
    """Write the manifest atomically: a reader sees the old file or the whole new one."""
    return atomic_write(record.manifest_path, json.dumps(manifest(record), indent=2) + "\n")


def _iso(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
