"""Console evidence of a probe run: each lab server's screen (PNG) and its serial console's last lines.

The screenshot comes through libvirt's screenshot API (QEMU answers with PPM; Pillow makes it
a PNG) where the VM has a graphics device. The serial lines are the tail of the file the lab's
serial port logs to (``clone.py`` gives every pty serial port one, appending), read on the
hypervisor's host through the host layer. Both go under the state directory with the run
(``history_evidence.evidence_dir``); what could not be taken is said in ``error``.
"""

from __future__ import annotations

import io
import re
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from ..atomic import atomic_write
from ..errors import LabmgrError
from ..history import now
from ..history_evidence import ConsoleEvidence, evidence_dir
from ..hostbase import Host
from ..hypervisor import Hypervisor

SERIAL_LINES = 40


def take_consoles(hypervisor: Hypervisor, host: Host, record, environment: str, run_id: int) -> list[ConsoleEvidence]:
    folder = evidence_dir(environment, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    servers = sorted(record.servers.items())
    with ThreadPoolExecutor(max_workers=max(1, len(servers)), thread_name_prefix="console") as pool:
        return list(pool.map(lambda item: _one(hypervisor, host, item[0], item[1].domain, folder), servers))


def _one(hypervisor: Hypervisor, host: Host, server: str, domain_name: str, folder) -> ConsoleEvidence:
    evidence = ConsoleEvidence(server, "", 0, 0, "", "", "", now())
    problems = []
    try:
        domain = hypervisor.domain(domain_name)
    except LabmgrError as exc:
        evidence.error = str(exc)
        return evidence
    try:
        shot = domain.screenshot()
        if shot is None:
            problems.append("no graphics device: no screenshot")
        else:
            png, (evidence.width, evidence.height) = to_png(shot[1])
            path = folder / f"{server}.png"
            atomic_write(path, png)
            evidence.screenshot = str(path)
    except (LabmgrError, OSError) as exc:
        problems.append(f"screenshot: {exc}")
    try:
        logs = domain.serial_logs()
        if not logs:
            problems.append("no serial log file")
        else:
            result = host.run(["tail", "-n", str(SERIAL_LINES), logs[0]], check=False)
            if result.ok:
                evidence.serial_tail = strip_controls(result.stdout)
                path = folder / f"{server}.serial.txt"
                atomic_write(path, evidence.serial_tail.encode())
                evidence.serial_log = str(path)
            else:
                problems.append(f"serial log {logs[0]}: {result.stderr.strip() or 'unreadable'}")
    except LabmgrError as exc:
        problems.append(f"serial log: {exc}")
    evidence.error = "; ".join(problems)
    return evidence


def to_png(image: bytes) -> tuple[bytes, tuple[int, int]]:
    """Any image Pillow reads (QEMU's PPM) as PNG bytes, and its size."""
    with Image.open(io.BytesIO(image)) as picture:
        out = io.BytesIO()
        picture.save(out, format="PNG", optimize=False)
        return out.getvalue(), picture.size


def strip_controls(text: str) -> str:
    """Terminal escape sequences and carriage returns out: the lines as a person read them."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]", "", text)
    return "\n".join(line.rstrip("\r").split("\r")[-1] for line in text.splitlines())
