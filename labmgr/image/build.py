"""Build a bootable qcow2 guest image from a recipe, cached by the recipe's hash.

Stages (each one reporter step):

``debootstrap``
    first stage (``--foreign``; downloads through the shared ``debs-cache``), then
    the second stage in the chroot (installs and configures every package):
    ``debootstrap.py``.
``configure``
    hostname, hosts, fstab, networkd, units, users, recipe files and commands:
    ``configure.py``.
``mkfs``
    ``mke2fs -d``: the tree becomes an ext4 filesystem image; no loop mount.
``convert``
    ``qemu-img convert`` raw -> qcow2.

The cache's layout and locks are in ``cache.py``; every command runs sandboxed
through ``runner.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..atomic import atomic_write
from ..errors import ImageBuildError, LabmgrError
from ..paths import images_dir, make_traversable
from ..progress import SILENT, Reporter
from . import tree
from .cache import (BUILD_JSON, BUILD_LOG, DISK, RECIPE_JSON, BuiltImage, built_image, find_cached, image_key,
                    is_complete, iter_cached, locked)
from .configure import ConfigureStage
from .debootstrap import DebootstrapStage
from .host import Tools, default_mirror, find_tools
from .recipe import BUILDER_VERSION, Recipe, format_size, load_recipe, recipe_hash
from .removal import remove_tree
from .runner import Runner, summary

# the cache's names, still importable from here (labmgr.image imports them from this module)
__all__ = ["BuiltImage", "build_image", "find_cached", "image_key", "iter_cached"]


def build_image(recipe: Recipe | Path | str, reporter: Reporter = SILENT, *, force: bool = False) -> BuiltImage:
    """Build (or fetch from the cache) the image for ``recipe``.

    Concurrent calls for the same recipe wait for each other; only one builds.
    ``force`` rebuilds even when cached and replaces the cached image: overlays
    created on top of the old ``disk.qcow2`` must not be used afterwards.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(Path(recipe))
    digest = recipe_hash(recipe)
    key = f"{recipe.name}-{digest[:12]}"
    images = images_dir()
    final = images / key
    if not force and is_complete(final):
        reporter.note(f"image {key} is cached")
        try:
            (final / RECIPE_JSON).chmod(0o600)      # cached by an older labmgr, world-readable
        except PermissionError:
            pass
        return built_image(final, digest, cached=True)

    tools = find_tools()
    if os.geteuid() != 0:
        raise ImageBuildError("building an image needs root (debootstrap and chroot)",
                              hint="run labmgr as root")
    with locked(images / f".{key}.lock", reporter, f"another build of {key}"):
        if not force and is_complete(final):
            reporter.note(f"image {key} was built meanwhile by another process")
            return built_image(final, digest, cached=True)
        _remove_stale(images, key)
        mirror = recipe.mirror or default_mirror()
        work = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=images))
        try:
            out = _Build(recipe, digest, key, tools, mirror, images, work, reporter).run()
            if final.exists():
                old = Path(tempfile.mkdtemp(prefix=f".old-{key}-", dir=images))
                os.rename(final, old / "image")
                os.rename(out, final)
                remove_tree(old)
            else:
                os.rename(out, final)
        finally:
            remove_tree(work)
        make_traversable(final)
    return built_image(final, digest, cached=False)

def _remove_stale(images: Path, key: str) -> None:
    """Leftovers of killed builds of this image (we hold its lock, so nobody uses them)."""
    for entry in images.iterdir():
        if entry.name.startswith((f".tmp-{key}-", f".old-{key}-")) and entry.is_dir():
            remove_tree(entry)


class _Build(DebootstrapStage, ConfigureStage):
    """One build in its work directory; the debootstrap and configure stages come from their modules."""

    def __init__(self, recipe: Recipe, digest: str, key: str, tools: Tools, mirror: str,
                 images: Path, work: Path, reporter: Reporter) -> None:
        self.recipe = recipe
        self.digest = digest
        self.key = key
        self.tools = tools
        self.mirror = mirror
        self.images = images
        self.work = work
        self.reporter = reporter
        self.root = work / "root"
        self.out = work / "out"
        self.raw = work / "disk.raw"
        self.log_path = work / BUILD_LOG
        self.durations: dict[str, float] = {}
        self.kernel_version = ""

    # -- driver -------------------------------------------------------------------------

    def run(self) -> Path:
        for directory in (self.root, self.out):
            directory.mkdir()
            directory.chmod(0o755)
        with open(self.log_path, "ab") as log:
            self.runner = Runner(log, self.tools)
            try:
                self._timed("debootstrap", self._debootstrap)
                self._timed("configure", self._configure)
                self._timed("mkfs", self._mkfs)
                self._timed("convert", self._convert)
            except LabmgrError as exc:
                raise self._keep_log(exc) from None
            except OSError as exc:
                raise self._keep_log(ImageBuildError(f"building image {self.key} failed: {exc}")) from exc
        self._finish()
        return self.out

    def _timed(self, name: str, stage: Callable[[], None]) -> None:
        started = time.monotonic()
        stage()
        self.durations[name] = round(time.monotonic() - started, 1)

    def _keep_log(self, exc: LabmgrError) -> LabmgrError:
        """Keep the log of a failed build next to the cache and point the error at it."""
        failed = self.images / f"{self.key}.failed.log"
        try:
            with open(failed, "wb") as target:
                target.write(self.log_path.read_bytes())
                inner = self.root / "debootstrap" / "debootstrap.log"
                if inner.is_file():
                    target.write(b"\n--- debootstrap.log from the tree ---\n" + inner.read_bytes())
            failed.chmod(0o644)
        except OSError:
            return exc
        where = f"full log: {failed}"
        exc.hint = f"{exc.hint}; {where}" if exc.hint else where
        return exc

    # -- filesystem ---------------------------------------------------------------------

    def _mkfs(self) -> None:
        recipe = self.recipe
        with self.reporter.step("mkfs", total=None) as step:
            step.update(label=f"mkfs: ext4 {recipe.size}")
            size = recipe.size_bytes
            need = tree.tree_usage(self.root)
            # ext4 metadata (inode tables, journal) plus headroom for the guest's first boots.
            wanted = int(need * 1.1) + size // 20 + (128 << 20)
            if wanted > size:
                suggest = format_size(-(-wanted // (256 << 20)) * (256 << 20))
                raise self.recipe.error(("size",), f"{recipe.size} is too small: the files alone take "
                                                   f"{need / (1 << 20):.0f} MiB",
                                        hint=f"use size: {suggest} or more")
            argv = [self.tools.mke2fs, "-q", "-t", "ext4", "-d", str(self.root), "-L", "root",
                    "-E", "root_owner=0:0"]
            if _mke2fs_has_orphan_file():
                # Older guest kernels and e2fsck (before 5.15 / 1.47) refuse orphan_file.
                argv += ["-O", "^orphan_file"]
            argv += [str(self.raw), f"{size // 1024}k"]
            code, tail = self.runner.run(argv, sandbox=False)
            if code:
                hint = None
                if any("allocate" in line or "No space" in line for line in tail):
                    hint = "increase 'size:' in the recipe"
                raise ImageBuildError(f"mke2fs failed with exit status {code}: {summary(tail, 3)}", hint=hint)
        remove_tree(self.root)

    def _convert(self) -> None:
        with self.reporter.step("convert", total=100) as step:
            def progress(line: str) -> None:
                match = re.search(r"\((\d+(?:\.\d+)?)/100%\)", line)
                if match:
                    step.update(completed=float(match.group(1)))

            argv = [self.tools.qemu_img, "convert", "-p", "-f", "raw", "-O", "qcow2",
                    str(self.raw), str(self.out / DISK)]
            code, tail = self.runner.run(argv, sandbox=False, on_line=progress)
            if code:
                raise ImageBuildError(f"qemu-img convert failed with exit status {code}: {summary(tail, 3)}")
            step.update(completed=100)
        self.raw.unlink()

    # -- results ------------------------------------------------------------------------

    def _finish(self) -> None:
        out = self.out
        # root-only: a recipe may hold users' passwords
        atomic_write(out / RECIPE_JSON, json.dumps(self.recipe.normalized(), indent=2, sort_keys=True) + "\n",
                     mode=0o600)
        build = {
            "key": self.key,
            "recipe_hash": self.digest,
            "builder_version": BUILDER_VERSION,
            "suite": self.recipe.suite,
            "mirror": self.mirror,
            "packages": self.recipe.all_packages,
            "kernel_version": self.kernel_version,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "durations_s": self.durations,
            "disk_bytes": (out / DISK).stat().st_size,
        }
        (out / BUILD_JSON).write_text(json.dumps(build, indent=2) + "\n")
        shutil.copyfile(self.log_path, out / BUILD_LOG)
        for entry in out.iterdir():     # QEMU reads them all, but the recipe (users' passwords) stays root's
            entry.chmod(0o600 if entry.name == RECIPE_JSON else 0o644)
        out.chmod(0o755)


def _mke2fs_has_orphan_file() -> bool:
    try:
        return "orphan_file" in Path("/etc/mke2fs.conf").read_text()
    except OSError:
        return False
