"""Finish what a killed labmgr process left half-done; run by the next labmgr command.

Two kinds of unfinished work are found: intents in the journal whose process is
gone (``labmgr.journal``: production frozen by a capture, a partial snapshot,
staged plaintext, a dump's temp directory in a production guest), and labs
whose record says ``restoring`` while no process holds their lock (put back at
their previous point by ``labmgr.lab.interrupted``). Each is handled under its
own lock, so two commands starting at once never both undo one thing. What
cannot be undone now (libvirt or a guest agent not answering) stays recorded
and is tried again by the next command; it is said in one line, never raised.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from . import journal, locks
from .errors import BusyError, LabmgrError
from .progress import SILENT, Reporter


def recover(reporter: Reporter = SILENT) -> list[str]:
    """Undo every abandoned intent and interrupted restore; returns what was done, one line each."""
    done: list[str] = []
    for entry in journal.abandoned():
        message = _handle(entry, reporter)
        if message:
            done.append(message)
    from .lab.interrupted import settle_interrupted_restores

    done.extend(settle_interrupted_restores(reporter))
    for line in done:
        reporter.note(line)
    return done


def recover_entry(path: Path, wait: float = 0) -> str | None:
    """Handle one journal entry once its process is gone (the capture watchdog waits for that)."""
    deadline = time.monotonic() + wait
    while locks.held_elsewhere(path.with_suffix(".lock")):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)
    for entry in journal.abandoned():
        if entry.path == path:
            return _handle(entry, SILENT)
    return None


def _handle(entry: journal.Intent, reporter: Reporter) -> str | None:
    handler = HANDLERS.get(entry.kind)
    if handler is None:
        return None
    try:
        with locks.hold(entry.lock, f"journal entry {entry.path.name}"):
            if not entry.path.exists():
                return None            # handled by another command meanwhile
            message = handler(entry.data)
            entry.forget()
            return message
    except BusyError:
        return None
    except LabmgrError as exc:
        reporter.note(f"unfinished {entry.kind} of a killed labmgr (pid {entry.data.get('pid')}) "
                      f"not yet undone: {exc}")
        return None


def _capture(data: dict) -> str:
    """Thaw what a killed capture froze, stop its backup jobs, remove its partial snapshot."""
    from .hosts import host_for
    from .hypervisor import connect

    host_partial = data["host_partial"]
    thawed = []
    with connect(data["uri"]) as hypervisor:
        for name in data.get("frozen", []):
            if hypervisor.has_domain(name) and hypervisor.domain(name).is_active():
                hypervisor.domain(name).thaw_filesystems()
                thawed.append(name)
        for domain in hypervisor.domains():
            if any(target.startswith(host_partial + "/") for target in domain.backup_targets()):
                domain.abort_job()
    shutil.rmtree(data["partial"], ignore_errors=True)
    if host_partial != data["partial"]:
        with host_for(data["uri"]) as host:
            host.remove_tree(host_partial)
    what = f"thawed {', '.join(thawed)} and " if thawed else ""
    return f"a killed snapshot capture was cleaned up: {what}removed its partial snapshot"


def _guest_directory(data: dict) -> str:
    """Remove a killed collection's temp directory from the production guest."""
    from .hypervisor import connect

    directory = data["directory"]
    if directory:
        with connect(data["uri"]) as hypervisor:
            if hypervisor.has_domain(data["domain"]) and hypervisor.domain(data["domain"]).is_active():
                hypervisor.domain(data["domain"]).agent(timeout=30).run(["rm", "-rf", "--", directory])
    return f"removed {directory} left in {data['domain']} by a killed dump collection"


def _files(data: dict) -> str:
    """Remove local files and directories a killed process staged (plaintext, partial dumps)."""
    for name in data.get("paths", []):
        path = Path(name)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return f"removed {data.get('what', 'files')} left by a killed labmgr"


HANDLERS = {"capture": _capture, "guest-directory": _guest_directory, "files": _files}
