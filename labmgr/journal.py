"""Intents: what a labmgr process is in the middle of, written down before it does it.

Work that must be undone if its process dies (filesystems frozen in production,
a partial snapshot, decrypted dumps staged on disk, a dump's temp directory in
a production guest) is wrapped in ``intent(kind, ...)``: a JSON file under
``<state>/journal/`` and a lock the process holds while it works. The file goes
when the work ends, whichever way it ends in-process. After a SIGKILL the file
stays and its lock is free: ``labmgr.recovery`` then finishes the undo, run by
the next labmgr command (and ``lab gc``).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from . import locks, paths
from .atomic import atomic_write


def journal_dir() -> Path:
    path = paths.state_dir() / "journal"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


class Intent:
    def __init__(self, path: Path, kind: str, data: dict) -> None:
        self.path, self.kind, self.data = path, kind, data

    @property
    def lock(self) -> Path:
        return self.path.with_suffix(".lock")

    def update(self, **data: object) -> None:
        """Record more of what is about to be done (before doing it)."""
        self.data.update(data)
        self._write()

    def _write(self) -> None:
        # it has to outlive a killed process, not a power cut (which also ends what it describes)
        atomic_write(self.path, json.dumps({"kind": self.kind, "pid": os.getpid(), **self.data}, indent=2),
                     mode=0o600, durable=False)

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)
        self.lock.unlink(missing_ok=True)


@contextmanager
def intent(kind: str, **data: object) -> Iterator[Intent]:
    """Hold an intent of ``kind`` for the duration of the block; it is gone after the block,
    unless the process was killed in it."""
    path = journal_dir() / f"{kind}-{os.getpid()}-{secrets.token_hex(4)}.json"
    entry = Intent(path, kind, dict(data))
    with locks.hold(entry.lock, f"journal entry {path.name}"):
        entry._write()
        try:
            yield entry
        finally:
            entry.forget()


def abandoned() -> list[Intent]:
    """Intents whose process is gone (their lock is free), oldest first."""
    found = []
    for lock in journal_dir().glob("*.lock"):      # a process killed before its entry's first write
        try:
            stale = time.time() - lock.stat().st_mtime > 60    # never one being taken right now
        except FileNotFoundError:
            continue
        if stale and not lock.with_suffix(".json").exists() and not locks.held_here(lock) \
                and not locks.held_elsewhere(lock):
            lock.unlink(missing_ok=True)
    for path in sorted(journal_dir().glob("*.json"), key=lambda p: p.stat().st_mtime):
        if locks.held_here(path.with_suffix(".lock")) or locks.held_elsewhere(path.with_suffix(".lock")):
            continue
        try:
            data = json.loads(path.read_text())
            kind = data.pop("kind")
        except (OSError, ValueError, KeyError):
            continue        # being written, or not ours: left alone
        found.append(Intent(path, kind, data))
    return found
