"""Dump media: a read-only ISO 9660 image (Rock Ridge names) built with pycdlib.

The ISO holds the dumps of one server for one point in time and a
``MANIFEST.json`` listing each file's name, sha256, kind and how to restore it.
pycdlib reads each file only while writing the image, so a large dump is never
held in memory.
"""

from __future__ import annotations

import io
import json
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import pycdlib

MANIFEST = "MANIFEST.json"
READ_ONLY_FOR_ALL = 0o100444      # a regular file, r--r--r--


@dataclass(frozen=True)
class MediaFile:
    name: str              # file name inside the media (Rock Ridge)
    source: Path           # plaintext file on the host
    sha256: str            # of the plaintext
    kind: str              # postgres, mariadb, files
    dump: str              # "<server>/<source>", for messages
    taken_at: str


def build_iso(path: Path, label: str, files: list[MediaFile]) -> Path:
    """Write the ISO to ``path``, readable by its owner only (it holds plaintext dumps; libvirt
    hands it to QEMU's user when it attaches it)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", vol_ident=label[:32])
    manifest = json.dumps({"label": label, "files": [
        {k: v for k, v in asdict(f).items() if k != "source"} for f in files]}, indent=2).encode()
    with ExitStack() as stack:
        iso.add_fp(io.BytesIO(manifest), len(manifest), "/MANIFEST.;1", rr_name=MANIFEST)
        for index, item in enumerate(files):
            handle = stack.enter_context(item.source.open("rb"))
            # readable by every user in the guest (pg_restore runs as postgres), whatever the
            # staged plaintext's own mode: pycdlib would copy that one
            iso.add_fp(handle, item.source.stat().st_size, f"/D{index}.;1", rr_name=item.name,
                       file_mode=READ_ONLY_FOR_ALL)
        path.touch(mode=0o600)
        path.chmod(0o600)
        iso.write(str(path))
    iso.close()
    return path
