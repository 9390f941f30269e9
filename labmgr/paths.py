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
    """Let QEMU's user (``libvirt-qemu``) enter every directory from ``path`` up to ``/``, and no more.

    libvirt runs QEMU as ``libvirt-qemu``: a disk image is only usable when every
    directory above it can be entered by that user. A directory it can already
    enter (as owner, through one of its groups, or as anyone) is left as it is;
    labmgr's own directories (below the state directory) are given to its group
    (``kvm``) with g+x rather than opened to everyone; any other gets o+x.
    """
    qemu = _qemu_user()
    root = state_dir()
    for directory in [path, *path.parents]:
        try:
            info = directory.stat()
            if qemu is None:
                if not info.st_mode & 0o001:
                    directory.chmod(info.st_mode | 0o001)
                continue
            uid, gids = qemu
            if (info.st_uid == uid and info.st_mode & 0o100) or (info.st_gid in gids and info.st_mode & 0o010) \
                    or info.st_mode & 0o001:
                continue
            if (directory == root or root in directory.parents) and info.st_uid == os.getuid():
                os.chown(directory, -1, gids[0])
                directory.chmod((info.st_mode & 0o7777) | 0o010)
            else:
                directory.chmod(info.st_mode | 0o001)
        except PermissionError:
            pass


def _qemu_user() -> tuple[int, list[int]] | None:
    """QEMU's uid and groups (its primary group first); None where there is no such user."""
    import grp
    import pwd

    try:
        user = pwd.getpwnam("libvirt-qemu")
    except KeyError:
        return None
    groups = [user.pw_gid] + [g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem and g.gr_gid != user.pw_gid]
    return user.pw_uid, groups
