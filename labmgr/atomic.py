"""One way to replace a file atomically: readers see the old file or the whole new one.

A unique temporary name beside the target (two writers never share one), the
data fsynced, renamed over the target, and the directory fsynced so the rename
survives a power cut. Every atomic file write in labmgr goes through here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | os.PathLike[str], data: bytes | str | BinaryIO, mode: int = 0o644,
                 durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically with permissions ``mode``; ``durable=False`` skips the
    fsyncs, for files that must outlive their process but not a power cut (the journal).

    The temporary name starts with a dot and ends in ``.tmp`` so collectors that
    glob ``*.prom`` or ``*.xml`` skip it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data      # bytes, or a binary file to copy
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)     # before any byte is written: a secret is never readable
            if isinstance(payload, bytes):
                handle.write(payload)
            else:
                shutil.copyfileobj(payload, handle, 2**20)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(target.parent)
    return target


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make renames and creations in ``directory`` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
