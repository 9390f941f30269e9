"""Removing a build's directories without ever descending into a mount still below them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import ImageBuildError


def mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    mounts = []
    try:
        with open("/proc/self/mountinfo") as info:
            for line in info:
                point = line.split()[4].encode().decode("unicode_escape")
                if point.startswith(prefix) or point == prefix[:-1]:
                    mounts.append(point)
    except OSError:
        pass
    return sorted(mounts, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    """``rm -rf`` that refuses to descend into anything still mounted below ``path``."""
    if not path.exists():
        return
    for point in mounts_below(path):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    if mounts_below(path):
        raise ImageBuildError(f"cannot remove {path}: something is still mounted below it",
                              hint=f"unmount {', '.join(mounts_below(path))} and retry")
    shutil.rmtree(path, ignore_errors=True)

