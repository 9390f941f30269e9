"""The host folder a pgBackRest restore works in, held by a lock; and the sweep of folders their restore left.

A restore's folder (``/var/tmp/labmgr-pgbackrest-XXXX``) holds a full copy of a
customer's cluster. Its lock (``labmgr-pgbackrest-XXXX.lock`` beside it, made
before the folder) is held while the restore runs: the kernel frees it however
the process dies, so a folder whose lock is free was left by a killed labmgr (or
a reboot) and is removed, after stopping a PostgreSQL still replaying in it (one
started by a labmgr before its replay died with it). Never by pid: a folder
whose lock is held is a restore going on, in this state directory or another.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .. import locks
from ..dumps.errors import DumpError
from ..errors import BusyError
from .pgbackrest import PG_LIB, as_postgres

ROOT = Path("/var/tmp")
PREFIX = "labmgr-pgbackrest-"
SETTLED = 60        # seconds: a lock file with no folder yet may be a restore between its two first steps


def lock_of(folder: Path) -> Path:
    return folder.with_name(folder.name + ".lock")


@contextmanager
def held_scratch(root: Path = ROOT) -> Iterator[Path]:
    """A new folder (the host's postgres user's, when labmgr is root) under ``root``, locked while in use,
    removed with its lock after."""
    fd, name = tempfile.mkstemp(prefix=PREFIX, suffix=".lock", dir=root)
    os.close(fd)
    lock = Path(name)
    folder = lock.with_name(lock.name[:-len(".lock")])
    with locks.hold(lock, f"pgBackRest scratch {folder}", timeout=5):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:         # not ours (the name's lock was): left as it is
            lock.unlink(missing_ok=True)
            raise DumpError(f"{folder} exists and labmgr did not make it",
                            hint="see whose it is and remove it, then restore again") from None
        try:
            if os.geteuid() == 0:
                shutil.chown(folder, "postgres", "postgres")
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            lock.unlink(missing_ok=True)


def sweep(root: Path = ROOT) -> list[Path]:
    """Remove every scratch folder under ``root`` whose lock is free (and lock files left alone); the removed."""
    removed = []
    for folder in sorted(root.glob(f"{PREFIX}*")):
        try:
            if folder.name.endswith(".lock") or not folder.is_dir() or folder.is_symlink() \
                    or folder.lstat().st_uid not in _owners():          # not a folder labmgr made
                continue
        except FileNotFoundError:
            continue
        lock = lock_of(folder)
        if locks.held_here(lock):            # another thread of this process restores there
            continue
        try:
            with locks.hold(lock, f"pgBackRest scratch {folder}"):
                stop_postgres(folder / "data")
                shutil.rmtree(folder, ignore_errors=True)
                lock.unlink(missing_ok=True)
        except (BusyError, PermissionError):     # a restore going on (or a lock not ours to open)
            continue
        if not folder.exists():
            removed.append(folder)
    for lock in root.glob(f"{PREFIX}*.lock"):       # a restore killed between its lock and its folder
        try:
            settled = time.time() - lock.stat().st_mtime > SETTLED
        except FileNotFoundError:
            continue
        if settled and not lock.with_name(lock.name[:-len(".lock")]).exists() and not locks.held_here(lock) \
                and not locks.held_elsewhere(lock):
            lock.unlink(missing_ok=True)
    return removed


def _owners() -> set[int]:
    """Who a restore's folder belongs to: this user, or the host's postgres user (labmgr as root gives it)."""
    try:
        return {os.geteuid(), pwd.getpwnam("postgres").pw_uid}
    except KeyError:
        return {os.geteuid()}


def stop_postgres(data: Path, timeout: float = 60) -> None:
    """Stop (immediately: the folder is thrown away) a postmaster still running on ``data``: only the
    process its postmaster.pid names, and only if that process is still a postgres of ``data``."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        running = str(data).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return
    if not running:
        return          # its pid is someone else's now
    try:
        pg_ctl = PG_LIB / (data / "PG_VERSION").read_text().strip() / "bin" / "pg_ctl"
    except OSError:
        pg_ctl = None
    if pg_ctl is not None and pg_ctl.exists():
        try:
            subprocess.run([str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "-t", str(int(timeout)), "stop"],
                           capture_output=True, cwd=data.parent, timeout=timeout + 10, **as_postgres())
        except subprocess.TimeoutExpired:
            pass            # its folder goes all the same
        return
    os.kill(pid, signal.SIGQUIT)             # what pg_ctl -m immediate sends
    deadline = time.monotonic() + timeout
    while (data / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
