"""A watchdog that thaws production if the capturing process dies while it is frozen.

``watchdog(journal)`` starts ``python -m labmgr.snapshot.watchdog JOURNAL`` in
its own session (a signal to the capture's process group does not reach it),
holding the write end of a pipe to it. When the capture has thawed, it says so
and the watchdog exits. If the pipe closes without that word, the capturing
process died (SIGKILL, OOM): the watchdog waits for the journal's lock to be
free and runs the same recovery the next labmgr command would (thaw, abort the
backup jobs, remove the partial snapshot), at once rather than whenever someone
next runs labmgr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DONE = b"thawed\n"
NO_WATCHDOG = "LABMGR_FAULT_NO_WATCHDOG"


@contextmanager
def watchdog(journal) -> Iterator[None]:
    if os.environ.get(NO_WATCHDOG):        # the fault suite proves the next command's recovery alone
        yield
        return
    child = subprocess.Popen([sys.executable, "-m", "labmgr.snapshot.watchdog", str(journal.path)],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    journal.update(watchdog=child.pid)
    try:
        yield
    finally:
        try:
            child.stdin.write(DONE)
            child.stdin.close()
        except OSError:
            pass
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(journal_path: str) -> int:
    word = sys.stdin.buffer.read()          # until the capture says so, or dies
    if word == DONE:
        return 0
    from .. import recovery

    recovery.recover_entry(Path(journal_path), wait=60)
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main(sys.argv[1]))
