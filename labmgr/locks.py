"""Locks a process holds while it works on something (a lab, a capture, a collection).

An ``flock`` is released by the kernel when its process dies, however it dies:
so whether a lock is held says whether that work is still going on, which a
pid cannot (pids are reused). Locks are re-entrant within one process: the core
may take a lab's lock in ``lab up`` and again in the teardown it calls on failure.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import BusyError

_held: dict[str, tuple[int, int]] = {}      # path -> (fd, depth): this process's locks
_guard = threading.RLock()


@contextmanager
def hold(path: str | os.PathLike[str], what: str, timeout: float = 0, hint: str | None = None) -> Iterator[None]:
    """Hold the lock at ``path`` (created if needed); ``BusyError`` naming ``what`` if another
    process keeps it for longer than ``timeout`` seconds."""
    key = str(Path(path).absolute())
    with _guard:
        fd, depth = _held.get(key, (-1, 0))
        if depth:
            _held[key] = (fd, depth + 1)
    if not depth:
        fd = _acquire(key, what, timeout, hint)
        with _guard:
            _held[key] = (fd, 1)
    try:
        yield
    finally:
        with _guard:
            fd, depth = _held[key]
            if depth > 1:
                _held[key] = (fd, depth - 1)
            else:
                del _held[key]
                os.close(fd)            # releases the flock


def _acquire(key: str, what: str, timeout: float, hint: str | None) -> int:
    Path(key).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise BusyError(f"{what} is busy: another labmgr command is working on it",
                                hint=hint or "wait for it to finish, then try again") from None
            time.sleep(0.1)


def held_elsewhere(path: str | os.PathLike[str]) -> bool:
    """Does another process hold the lock at ``path``? (This process's own locks: no.)"""
    key = str(Path(path).absolute())
    with _guard:
        if key in _held:
            return False
    try:
        fd = os.open(key, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def held_here(path: str | os.PathLike[str]) -> bool:
    with _guard:
        return str(Path(path).absolute()) in _held
