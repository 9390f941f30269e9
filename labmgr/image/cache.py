"""The image cache: where a recipe's finished image lives, finding it there, and the locks builds wait on.

Layout below ``images_dir()``::

    {name}-{hash12}/           disk.qcow2 vmlinuz initrd.img recipe.json build.json build.log
    debs-cache/                .debs shared by all builds (debootstrap --cache-dir)
    .{name}-{hash12}.lock      held while building that image
    .tmp-{name}-{hash12}-*/    a build in progress; renamed into place only when complete
    {name}-{hash12}.failed.log the log of the last failed build
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from ..paths import images_dir
from ..progress import Reporter
from .recipe import Recipe, recipe_hash

DISK = "disk.qcow2"
KERNEL = "vmlinuz"
INITRD = "initrd.img"
RECIPE_JSON = "recipe.json"
BUILD_JSON = "build.json"
BUILD_LOG = "build.log"
DEBS_CACHE = "debs-cache"
COMPLETE_FILES = (DISK, KERNEL, INITRD, RECIPE_JSON)


@dataclass(frozen=True)
class BuiltImage:
    """A finished image. Boot with ``kernel``/``initrd`` and ``root=/dev/vda`` (no partition table)."""

    disk: Path
    kernel: Path
    initrd: Path
    recipe_hash: str
    cached: bool

    @property
    def directory(self) -> Path:
        return self.disk.parent


def image_key(recipe: Recipe) -> str:
    """The cache directory name: ``{name}-{hash[:12]}``."""
    return f"{recipe.name}-{recipe_hash(recipe)[:12]}"


def find_cached(recipe: Recipe) -> BuiltImage | None:
    """The finished image for ``recipe`` if it is in the cache, without building."""
    directory = images_dir() / image_key(recipe)
    return built_image(directory, recipe_hash(recipe), cached=True) if is_complete(directory) else None


def iter_cached() -> Iterator[Path]:
    """Directories of finished images in the cache."""
    for entry in sorted(images_dir().iterdir()):
        if not entry.name.startswith(".") and entry.is_dir() and is_complete(entry):
            yield entry


def is_complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in COMPLETE_FILES)


def built_image(directory: Path, digest: str, *, cached: bool) -> BuiltImage:
    return BuiltImage(disk=directory / DISK, kernel=directory / KERNEL, initrd=directory / INITRD,
                      recipe_hash=digest, cached=cached)


class locked:
    """Hold a FileLock; tell the reporter when we have to wait for it."""

    def __init__(self, path: Path, reporter: Reporter, holder: str) -> None:
        self.lock = FileLock(str(path))
        self.reporter = reporter
        self.holder = holder

    def __enter__(self) -> None:
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            self.reporter.note(f"waiting for {self.holder} to finish")
            self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

