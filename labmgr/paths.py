"""Where labmgr keeps its state (images, snapshots, labs).

``LABMGR_STATE_DIR`` overrides the default. Everything handed to libvirt lives
below it, so the whole tree is made traversable for the ``libvirt-qemu`` user.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STATE_DIR = Path("/var/lib/labmgr")


def state_dir() -> Path:
    root = Path(os.environ.get("LABMGR_STATE_DIR", DEFAULT_STATE_DIR)).absolute()
    root.mkdir(parents=True, exist_ok=True)
    return root


def owner_id() -> str:
    """This state directory's identity, written into every libvirt object it makes: ``lab gc``
    and ``lab list`` leave alone the labs of another labmgr (another state directory or
    machine) that shares the hypervisor."""
    path = state_dir() / "owner-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        import uuid

        tmp = path.with_suffix(f".{os.getpid()}")
        tmp.write_text(uuid.uuid4().hex[:16] + "\n")
        try:
            os.link(tmp, path)          # first writer wins; a racing one reads the winner's
        except FileExistsError:
            pass
        tmp.unlink()
        return path.read_text().strip()


def subdir(name: str) -> Path:
    path = state_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    make_traversable(path)
    return path


def images_dir() -> Path:
    return subdir("images")


def snapshots_dir() -> Path:
    return subdir("snapshots")


def labs_dir() -> Path:
    return subdir("labs")


def make_traversable(path: Path) -> None:
    """Give 'others' execute on every directory from ``path`` up to ``/``.

    libvirt runs QEMU as ``libvirt-qemu``: a disk image is only usable when every
    directory above it can be entered by that user.
    """
    for directory in [path, *path.parents]:
        try:
            mode = directory.stat().st_mode
            if not mode & 0o001:
                directory.chmod(mode | 0o001)
        except PermissionError:
            pass
