"""The debootstrap stage of a build: both stages of debootstrap, their progress, their errors in a line.

First stage ``--foreign`` (downloads through the shared ``debs-cache``), then the
second stage in the chroot (installs and configures every package).
"""

from __future__ import annotations

import re

from ..errors import ImageBuildError, LabmgrError
from ..progress import Step
from . import tree
from .cache import DEBS_CACHE, locked
from .runner import summary
from .stage import BuildState

# The default initramfs (MODULES=most) is ~35 MB: slow to load and unpack under TCG.
# The guest's root is always an ext4 virtio disk, so a short list is enough (~6 MB).
# Written before the second stage (conf.d and hooks/ are not conffiles) so the
# kernel's postinst builds the small initramfs right away.
INITRAMFS_CONF = "/etc/initramfs-tools/conf.d/labmgr.conf"
INITRAMFS_HOOK = "/etc/initramfs-tools/hooks/labmgr"
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "ext4", "crc32c_generic")


class DebootstrapStage(BuildState):
    """Part of a build (``build._Build``); what it reads of the build is in ``BuildState``."""

    def _debootstrap(self) -> None:
        recipe = self.recipe
        cache = self.images / DEBS_CACHE
        cache.mkdir(exist_ok=True)
        with self.reporter.step("debootstrap", total=None) as step:
            first = [self.tools.debootstrap, "--variant=minbase", "--foreign", f"--cache-dir={cache}",
                     "--include=" + ",".join(recipe.all_packages), recipe.suite, str(self.root), self.mirror]
            # debootstrap does not expect two runs to share a --cache-dir.
            with locked(self.images / ".debs-cache.lock", self.reporter, "another build's downloads"):
                code, tail = self.runner.run(first, on_line=lambda line: self._first_stage_line(step, line))
            if code:
                raise self._debootstrap_error("first", code, tail)

            self._preseed()
            try:
                count = len((self.root / "debootstrap" / "debpaths").read_text().splitlines())
            except OSError:
                count = 0
            step.update(total=2 * count or None, completed=0, label="debootstrap: installing")
            second = [self.tools.chroot, str(self.root), "/debootstrap/debootstrap", "--second-stage"]
            code, tail = self.runner.run(second, on_line=lambda line: self._second_stage_line(step, line))
            if code:
                raise self._debootstrap_error("second", code, tail)
            if count:
                step.update(completed=2 * count)

    def _preseed(self) -> None:
        """Configuration that must be in place before the packages are installed."""
        tree.write_file(self.root, INITRAMFS_CONF,
                        "# written by labmgr: only the modules to mount an ext4 root on virtio\nMODULES=list\n")
        tree.write_file(self.root, INITRAMFS_HOOK,
                        "#!/bin/sh\n# written by labmgr: modules the initramfs needs for root=/dev/vda\n"
                        'PREREQ=""\nprereqs() { echo "$PREREQ"; }\n'
                        'case "$1" in prereqs) prereqs; exit 0;; esac\n'
                        ". /usr/share/initramfs-tools/hook-functions\n"
                        f"for module in {' '.join(INITRAMFS_MODULES)}; do force_load \"$module\"; done\n",
                        mode=0o755)

    @staticmethod
    def _first_stage_line(step: Step, line: str) -> None:
        match = re.match(r"I: (Retrieving|Extracting|Resolving|Checking|Validating) ?(\S*)", line)
        if not match or match.group(1) == "Validating":
            return
        verb, what = match.groups()
        label = {"Retrieving": "downloading", "Extracting": "extracting"}.get(verb)
        if label and what not in ("InRelease", "Release", "Packages"):
            step.update(label=f"debootstrap: {label} {what.rstrip('.')}")
        else:
            step.update(label=f"debootstrap: {line[3:].rstrip('.')}")

    def _second_stage_line(self, step: Step, line: str) -> None:
        match = re.match(r"I: (Unpacking|Configuring) (\S+?)\.*$", line)
        if match:
            step.advance()
            step.update(label=f"debootstrap: {match.group(1).lower()} {match.group(2)}")

    def _debootstrap_error(self, stage: str, code: int, tail: list[str]) -> LabmgrError:
        text = "\n".join(tail)
        missing = re.search(r"Couldn't find these debs: (.*)", text)
        if missing:
            for name in missing.group(1).split():
                if name in self.recipe.packages:
                    return self.recipe.error(
                        ("packages", self.recipe.packages.index(name)),
                        f"package '{name}' is not in {self.recipe.suite} on {self.mirror}",
                        hint="check the spelling (apt-cache policy NAME on a Debian host)")
            return ImageBuildError(f"debootstrap could not find {missing.group(1).strip()} "
                                   f"in {self.recipe.suite} on {self.mirror}")
        if "No such script" in text:
            return self.recipe.error(("suite",), f"debootstrap does not know the suite '{self.recipe.suite}'",
                                     hint="use a Debian suite name such as bookworm")
        hint = "the last lines of its output are shown"
        if re.search(r"Failed getting release|Release signed by unknown key|is expired", text):
            hint = f"check that {self.mirror} is reachable and serves the suite '{self.recipe.suite}'"
        elif re.search(r"Couldn't download|Temporary failure|Could not resolve|Connection refused", text):
            hint = f"cannot download from {self.mirror}; check the network, proxy and 'mirror:'"
        elif stage == "second":
            inner = self.root / "debootstrap" / "debootstrap.log"
            if inner.is_file():
                tail = inner.read_text(errors="replace").splitlines()[-40:] or tail
            hint = "a package failed to install inside the tree"
        return ImageBuildError(f"debootstrap ({stage} stage) failed with exit status {code}: {summary(tail)}",
                               hint=hint)
