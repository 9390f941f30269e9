"""The demo's files: examples/demo/ in the repository, ``labmgr.demo.examples`` once installed.

The demo works on a copy in its own directory (``$LABMGR_STATE_DIR/demo``), as
a user works on a copy of the examples: the drill plan's report directory and
the spec's path then belong to the demo, not to the installed package.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

from .. import paths

SPEC = "lmdemo.yaml"
PROBES = "probes.yaml"
PLAN = "drill.yaml"
RECIPE = "recipe.yaml"
SERVERS = "servers"


def source() -> Path:
    return Path(str(files("labmgr.demo.examples")))


def workdir() -> Path:
    return paths.state_dir() / "demo"


def copy_examples() -> Path:
    """A fresh copy of the examples in the demo's directory; returns that directory."""
    target = workdir()
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source(), target, ignore=shutil.ignore_patterns("__init__.py", "__pycache__", "*.pyc"))
    return target


def demo_key_path(folder: Path) -> Path:
    """The demo's own SSH key, accepted by root on every demo server (``labmgr ssh -i``)."""
    return folder / "ssh" / "id_ed25519"


def server_files(folder: Path, server: str) -> list[Path]:
    """What the demo puts on a production server: every file of servers/<server>/."""
    directory = folder / SERVERS / server
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else []
