"""Writing into a guest root tree from the host without ever writing outside it.

A guest path such as ``/etc/resolv.conf`` may be an absolute symlink inside the
tree; followed naively from the host it would point at the host's own file.
``guest_path`` resolves symlinks the way the guest would (``/`` is the tree).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import ImageBuildError

_MAX_SYMLINKS = 40


def guest_path(root: Path, path: str, *, follow_last: bool = True) -> Path:
    """The host path of guest ``path`` below ``root``, symlinks resolved inside ``root``."""
    pending = [part for part in path.split("/") if part not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink() and (pending or follow_last):
            hops += 1
            if hops > _MAX_SYMLINKS:
                raise ImageBuildError(f"too many levels of symbolic links resolving {path} in the image")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def write_file(root: Path, path: str, content: str | bytes, *, mode: int = 0o644,
               uid: int = 0, gid: int = 0) -> Path:
    """Create or replace guest file ``path`` (a symlink at ``path`` is replaced, not followed)."""
    parent = guest_path(root, os.path.dirname(path))
    target = parent / os.path.basename(path)
    make_dirs(root, os.path.dirname(path))
    if target.is_symlink():
        target.unlink()
    elif target.is_dir():
        raise ImageBuildError(f"cannot write {path} in the image: it is a directory")
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return target


def make_dirs(root: Path, path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Path:
    """``mkdir -p`` of guest ``path``; new directories get ``mode`` and owner."""
    current = "/"
    for part in [p for p in path.split("/") if p not in ("", ".")]:
        current = os.path.join(current, part)
        host = guest_path(root, current)
        if not host.exists():
            # parents=True: a symlink on the way may point at a directory that does not exist
            # yet; ``host`` is already resolved inside ``root``, so its parents are too.
            host.mkdir(mode=mode, parents=True)
            os.chown(host, uid, gid)
            os.chmod(host, mode)
        elif not host.is_dir():
            raise ImageBuildError(f"cannot create directory {current} in the image: a file is in the way")
    return guest_path(root, path)


def symlink(root: Path, path: str, target: str) -> None:
    """Create or replace guest symlink ``path`` -> ``target``."""
    make_dirs(root, os.path.dirname(path))
    host = guest_path(root, os.path.dirname(path)) / os.path.basename(path)
    if host.is_symlink() or host.is_file():
        host.unlink()
    host.symlink_to(target)


def remove_contents(root: Path, path: str) -> None:
    """Empty guest directory ``path`` (keeps the directory itself)."""
    directory = guest_path(root, path)
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def passwd_entry(root: Path, user: str) -> tuple[int, int, str] | None:
    """``(uid, gid, home)`` of ``user`` from the tree's ``/etc/passwd``."""
    try:
        lines = guest_path(root, "/etc/passwd").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == user:
            return int(fields[2]), int(fields[3]), fields[5]
    return None


def tree_usage(root: Path) -> int:
    """Bytes the tree will take on ext4, roughly: allocated blocks plus one block per inode."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if st.st_nlink > 1 and not os.path.isdir(os.path.join(directory, name)):
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += max(st.st_blocks * 512, 0) + 256
    return total
