"""The demo's last line: a share link to its application, for checking the data in a browser.

``labmgr share`` serves in the foreground; here it is started as its own process (own session,
output to a file in the demo's folder) so it outlives the demo, and ``labmgr demo down`` (which
takes the lab down) ends it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def share_in_background(lab: str, target: str, log: Path, duration: str = "4h", wait: float = 60) -> str:
    """Start ``labmgr share LAB TARGET --names you`` and return its link ('' with the reason in ``log``)."""
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "labmgr", "share", lab, target, "--for", duration,
                                    "--names", "you"], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and process.poll() is None:
        for line in log.read_text().splitlines():
            if line.strip().startswith("you ") and "/s/" in line:
                return line.split()[-1]
        time.sleep(0.2)
    return ""
