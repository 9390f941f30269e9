"""Small helpers shared by the integration tests."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from labmgr.hypervisor import Hypervisor

REPO = Path(__file__).parent.parent


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def backing_chain(path: Path) -> list[tuple[str, str | None]]:
    """The image chain of a (possibly in-use) qcow2: file names and backing files."""
    out = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", "--output=json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return [(i["filename"], i.get("backing-filename")) for i in json.loads(out)]


def labmgr(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real command line, as a user would."""
    return subprocess.run([sys.executable, "-m", "labmgr", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=REPO)


def leftovers(hypervisor: Hypervisor, prefix: str) -> list[str]:
    """Every libvirt object and lab directory whose name starts with ``prefix``."""
    from labmgr import paths

    found = [f"domain {d}" for d in hypervisor.domain_names() if d.startswith(prefix)]
    found += [f"network {n}" for n in hypervisor.network_names() if n.startswith(prefix)]
    found += [f"dir {p}" for p in paths.labs_dir().glob(f"{prefix}*")]
    return found


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """Assert the command failed with one error line, last on stderr, and no traceback; return it.

    Finished progress steps ("✓ stage  1.2 s") may come before it: they are the run's log."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    progress = [line for line in lines[:-1] if not line.lstrip().startswith(("✓", "!"))]
    assert progress == [], result.stderr
    assert lines[-1].startswith("labmgr: error: "), lines[-1]
    return lines[-1]
