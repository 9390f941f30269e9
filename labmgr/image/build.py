"""Build a bootable qcow2 guest image from a recipe, cached by the recipe's hash.

Stages (each one reporter step):

``debootstrap``
    first stage (``--foreign``; downloads through the shared ``debs-cache``), then
    the second stage in the chroot (installs and configures every package).
``configure``
    hostname, hosts, fstab, networkd, units, users, recipe files and commands.
``mkfs``
    ``mke2fs -d``: the tree becomes an ext4 filesystem image; no loop mount.
``convert``
    ``qemu-img convert`` raw -> qcow2.

Layout below ``images_dir()``::

    {name}-{hash12}/           disk.qcow2 vmlinuz initrd.img recipe.json build.json build.log
    debs-cache/                .debs shared by all builds (debootstrap --cache-dir)
    .{name}-{hash12}.lock      held while building that image
    .tmp-{name}-{hash12}-*/    a build in progress; renamed into place only when complete
    {name}-{hash12}.failed.log the log of the last failed build

Every command that runs in the tree runs in its own PID and mount namespace
(``unshare``) with a parent-death signal (``setpriv``): mounts made inside
(``/proc`` of the chroot) vanish with it, and killing labmgr kills the build.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from filelock import FileLock, Timeout

from ..atomic import atomic_write
from ..errors import ImageBuildError, LabmgrError
from ..paths import images_dir, make_traversable
from ..progress import SILENT, Reporter, Step
from . import tree
from .host import Tools, default_mirror, find_tools
from .recipe import BASE_SERVICES, BUILDER_VERSION, Recipe, format_size, load_recipe, recipe_hash

DISK = "disk.qcow2"
KERNEL = "vmlinuz"
INITRD = "initrd.img"
RECIPE_JSON = "recipe.json"
BUILD_JSON = "build.json"
BUILD_LOG = "build.log"
DEBS_CACHE = "debs-cache"
_COMPLETE = (DISK, KERNEL, INITRD, RECIPE_JSON)

# Units Debian enables that only cost time (and TCG CPU) in a short-lived lab guest.
_QUIET_UNITS = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
    "fstrim.timer", "man-db.timer", "e2scrub_reap.service",
    # DHCP never answers in a lab; nothing should wait for "online".
    "systemd-networkd-wait-online.service",
)
# /etc/machine-id is left empty so every guest gets its own on first boot; that makes the
# boot a "first boot", and this unit would then prompt on the console and block.
_MASKED_UNITS = ("systemd-firstboot.service",)

NETWORK_FILE = "/etc/systemd/network/90-labmgr-default.network"

# The default initramfs (MODULES=most) is ~35 MB: slow to load and unpack under TCG.
# The guest's root is always an ext4 virtio disk, so a short list is enough (~6 MB).
# Written before the second stage (conf.d and hooks/ are not conffiles) so the
# kernel's postinst builds the small initramfs right away.
INITRAMFS_CONF = "/etc/initramfs-tools/conf.d/labmgr.conf"
INITRAMFS_HOOK = "/etc/initramfs-tools/hooks/labmgr"
# Modules udev would load for emulated hardware a lab guest never uses; each costs
# boot time under TCG (floppy probing, nested KVM, wireless regulatory, beeper).
MODPROBE_FILE = "/etc/modprobe.d/labmgr-lab-guest.conf"
BLACKLISTED_MODULES = ("floppy", "pcspkr", "kvm", "kvm_amd", "kvm_intel", "cfg80211")
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "ext4", "crc32c_generic")
_CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


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
    return _built(directory, recipe_hash(recipe), cached=True) if _complete(directory) else None


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
    if not force and _complete(final):
        reporter.note(f"image {key} is cached")
        try:
            (final / RECIPE_JSON).chmod(0o600)      # cached by an older labmgr, world-readable
        except PermissionError:
            pass
        return _built(final, digest, cached=True)

    tools = find_tools()
    if os.geteuid() != 0:
        raise ImageBuildError("building an image needs root (debootstrap and chroot)",
                              hint="run labmgr as root")
    with _locked(images / f".{key}.lock", reporter, f"another build of {key}"):
        if not force and _complete(final):
            reporter.note(f"image {key} was built meanwhile by another process")
            return _built(final, digest, cached=True)
        _remove_stale(images, key)
        mirror = recipe.mirror or default_mirror()
        work = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=images))
        try:
            out = _Build(recipe, digest, key, tools, mirror, images, work, reporter).run()
            if final.exists():
                old = Path(tempfile.mkdtemp(prefix=f".old-{key}-", dir=images))
                os.rename(final, old / "image")
                os.rename(out, final)
                _remove_tree(old)
            else:
                os.rename(out, final)
        finally:
            _remove_tree(work)
        make_traversable(final)
    return _built(final, digest, cached=False)


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in _COMPLETE)


def _built(directory: Path, digest: str, *, cached: bool) -> BuiltImage:
    return BuiltImage(disk=directory / DISK, kernel=directory / KERNEL, initrd=directory / INITRD,
                      recipe_hash=digest, cached=cached)


class _locked:
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


def _remove_stale(images: Path, key: str) -> None:
    """Leftovers of killed builds of this image (we hold its lock, so nobody uses them)."""
    for entry in images.iterdir():
        if entry.name.startswith((f".tmp-{key}-", f".old-{key}-")) and entry.is_dir():
            _remove_tree(entry)


def _mounts_below(path: Path) -> list[str]:
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


def _remove_tree(path: Path) -> None:
    """``rm -rf`` that refuses to descend into anything still mounted below ``path``."""
    if not path.exists():
        return
    for point in _mounts_below(path):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    if _mounts_below(path):
        raise ImageBuildError(f"cannot remove {path}: something is still mounted below it",
                              hint=f"unmount {', '.join(_mounts_below(path))} and retry")
    shutil.rmtree(path, ignore_errors=True)


def _env() -> dict[str, str]:
    env = {"PATH": _CHROOT_PATH, "LC_ALL": "C", "LANG": "C", "HOME": "/root",
           "DEBIAN_FRONTEND": "noninteractive", "DEBCONF_NONINTERACTIVE_SEEN": "true"}
    env.update({name: os.environ[name] for name in _PROXY_VARS if name in os.environ})
    return env


class _Runner:
    """Runs commands, appends their output to the build log, keeps the last lines."""

    def __init__(self, log: BinaryIO, tools: Tools) -> None:
        self.log = log
        self.tools = tools

    def sandboxed(self, argv: list[str]) -> list[str]:
        return [self.tools.setpriv, "--pdeathsig", "KILL",
                self.tools.unshare, "--pid", "--fork", "--kill-child", "--mount-proc",
                "--propagation", "private", "--", *argv]

    def run(self, argv: list[str], *, sandbox: bool = True, stdin: bytes | None = None,
            on_line: Callable[[str], None] | None = None, shown: list[str] | None = None) -> tuple[int, list[str]]:
        full = self.sandboxed(argv) if sandbox else list(argv)
        self.log.write(f"$ {shlex.join(shown if shown is not None else argv)}\n".encode())
        self.log.flush()
        tail: deque[str] = deque(maxlen=40)
        proc = subprocess.Popen(full, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(),
                                cwd="/", start_new_session=True)
        assert proc.stdout is not None
        try:
            if stdin is not None:
                assert proc.stdin is not None
                proc.stdin.write(stdin)
                proc.stdin.close()
            pending = b""
            while chunk := proc.stdout.read1(65536):
                self.log.write(chunk)
                *lines, pending = re.split(rb"[\r\n]", pending + chunk)
                for raw in lines:
                    self._line(raw, tail, on_line)
            self._line(pending, tail, on_line)
            code = proc.wait()
        except BaseException:
            _kill(proc)
            raise
        finally:
            proc.stdout.close()
        self.log.write(f"[exit status {code}]\n".encode())
        self.log.flush()
        return code, list(tail)

    @staticmethod
    def _line(raw: bytes, tail: deque[str], on_line: Callable[[str], None] | None) -> None:
        line = raw.decode(errors="replace").rstrip()
        if line:
            tail.append(line)
            if on_line:
                on_line(line)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _summary(lines: list[str], count: int = 6) -> str:
    """The last lines of a command's output, on one line (the CLI prints errors as one line)."""
    errors = [line for line in lines if line.startswith(("E:", "W:"))]
    picked = (errors or lines)[-count:]
    return " | ".join(line.strip() for line in picked) or "no output"


class _Build:
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
            self.runner = _Runner(log, self.tools)
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

    # -- debootstrap --------------------------------------------------------------------

    def _debootstrap(self) -> None:
        recipe = self.recipe
        cache = self.images / DEBS_CACHE
        cache.mkdir(exist_ok=True)
        with self.reporter.step("debootstrap", total=None) as step:
            first = [self.tools.debootstrap, "--variant=minbase", "--foreign", f"--cache-dir={cache}",
                     "--include=" + ",".join(recipe.all_packages), recipe.suite, str(self.root), self.mirror]
            # debootstrap does not expect two runs to share a --cache-dir.
            with _locked(self.images / ".debs-cache.lock", self.reporter, "another build's downloads"):
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
        return ImageBuildError(f"debootstrap ({stage} stage) failed with exit status {code}: {_summary(tail)}",
                               hint=hint)

    # -- configure ----------------------------------------------------------------------

    def _configure(self) -> None:
        recipe = self.recipe
        actions: list[tuple[str, Callable[[], None]]] = [
            ("system files", self._system_files),
            ("recipe files", self._recipe_files),
            ("users", self._users),
            ("services", self._services),
        ]
        actions += [(f"command {i + 1}", lambda i=i: self._command(i)) for i in range(len(recipe.commands))]
        actions += [("cleanup", self._cleanup), ("kernel", self._kernel)]
        with self.reporter.step("configure", total=len(actions)) as step:
            for label, action in actions:
                step.update(label=f"configure: {label}")
                action()
                step.advance()

    def _system_files(self) -> None:
        root, recipe = self.root, self.recipe
        hostname = recipe.hostname
        short = hostname.split(".")[0]
        names = f"{hostname} {short}" if short != hostname else hostname
        tree.write_file(root, "/etc/hostname", f"{hostname}\n")
        tree.write_file(root, "/etc/hosts",
                        f"127.0.0.1\tlocalhost\n127.0.1.1\t{names}\n\n"
                        "::1\tlocalhost ip6-localhost ip6-loopback\n"
                        "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
        tree.write_file(root, "/etc/fstab", "# written by labmgr: the root filesystem is the whole disk\n"
                                            "/dev/vda / ext4 defaults 0 1\n")
        # debootstrap copies the build host's resolv.conf; a lab guest has no DNS of its own.
        tree.write_file(root, "/etc/resolv.conf", "# written by labmgr: no DNS configured\n")
        # Empty: each guest generates its own machine-id on first boot (DHCP client ids, journal).
        tree.write_file(root, "/etc/machine-id", "", mode=0o444)
        tree.symlink(root, "/var/lib/dbus/machine-id", "/etc/machine-id")
        tree.write_file(root, MODPROBE_FILE, "# written by labmgr: hardware a lab guest does not use\n"
                        + "".join(f"blacklist {module}\n" for module in BLACKLISTED_MODULES))
        dhcp = "yes" if recipe.network.dhcp else "no"
        tree.write_file(root, NETWORK_FILE,
                        "# written by labmgr: default for every wired NIC; labs add lower-numbered\n"
                        "# .network files to set static addresses (the first match wins)\n"
                        "[Match]\nName=en* eth*\n\n"
                        f"[Network]\nDHCP={dhcp}\n")

    def _recipe_files(self) -> None:
        for entry in self.recipe.files:
            tree.write_file(self.root, entry.path, entry.content, mode=int(entry.mode, 8))

    def _chroot(self, *argv: str, stdin: bytes | None = None) -> tuple[int, list[str]]:
        return self.runner.run([self.tools.chroot, str(self.root), *argv], stdin=stdin)

    def _users(self) -> None:
        for i, user in enumerate(self.recipe.users):
            entry = tree.passwd_entry(self.root, user.name)
            if entry is None:
                code, tail = self._chroot("useradd", "--create-home", "--user-group", "--shell", "/bin/bash",
                                          user.name)
                entry = tree.passwd_entry(self.root, user.name)
                if code or entry is None:
                    raise self.recipe.error(("users", i, "name"),
                                            f"cannot create user '{user.name}': {_summary(tail, 2)}")
            if user.password is not None:
                # The guest's own chpasswd hashes it (yescrypt/SHA-512 per its PAM config);
                # the password goes through stdin, never on a command line.
                code, tail = self._chroot("chpasswd", stdin=f"{user.name}:{user.password}\n".encode())
                if code:
                    raise self.recipe.error(("users", i, "password"),
                                            f"cannot set the password of '{user.name}': {_summary(tail, 2)}")
            if user.ssh_authorized_keys:
                uid, gid, home = entry
                tree.make_dirs(self.root, f"{home}/.ssh", mode=0o700, uid=uid, gid=gid)
                tree.write_file(self.root, f"{home}/.ssh/authorized_keys",
                                "".join(f"{key}\n" for key in user.ssh_authorized_keys),
                                mode=0o600, uid=uid, gid=gid)

    def _unit_exists(self, unit: str) -> bool:
        return any(tree.guest_path(self.root, f"{directory}/{unit}").exists()
                   for directory in ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"))

    def _services(self) -> None:
        self._systemctl("enable", list(BASE_SERVICES))
        # After enabling networkd: its [Install] Also= enables systemd-networkd-wait-online.
        quiet = [unit for unit in _QUIET_UNITS
                 if self._unit_exists(unit) and unit not in self.recipe.services]
        if quiet:
            self._systemctl("disable", quiet)
        self._systemctl("mask", list(_MASKED_UNITS))
        for i, service in enumerate(self.recipe.services):
            code, tail = self._chroot("systemctl", "enable", service)
            if code:
                raise self.recipe.error(("services", i), f"cannot enable '{service}': {_summary(tail, 2)}",
                                        hint="the package that ships the unit must be in packages")

    def _systemctl(self, verb: str, units: list[str]) -> None:
        code, tail = self._chroot("systemctl", verb, *units)
        if code:
            raise ImageBuildError(f"systemctl {verb} {' '.join(units)} failed in the image: {_summary(tail, 3)}")

    def _command(self, index: int) -> None:
        command = self.recipe.commands[index]
        policy = "/usr/sbin/policy-rc.d"
        tree.write_file(self.root, policy, "#!/bin/sh\n# labmgr: start no daemons while building\nexit 101\n",
                        mode=0o755)
        try:
            # Mount /proc for the command inside our private mount namespace; it goes away with it.
            script = 'mount -t proc proc "$1/proc" && exec "$2" "$1" /bin/sh -ec "$3"'
            code, tail = self.runner.run(["/bin/sh", "-c", script, "labmgr-command", str(self.root),
                                          self.tools.chroot, command],
                                         shown=["chroot", str(self.root), "/bin/sh", "-ec", command])
        finally:
            tree.guest_path(self.root, policy, follow_last=False).unlink(missing_ok=True)
        if code:
            raise self.recipe.error(("commands", index), f"command failed with exit status {code}: "
                                                         f"{_summary(tail, 3)}")

    def _cleanup(self) -> None:
        root = self.root
        for directory in ("/var/cache/apt/archives", "/var/lib/apt/lists"):
            path = tree.guest_path(root, directory)
            if path.is_dir():
                for entry in path.iterdir():
                    if entry.is_file() and entry.name != "lock":
                        entry.unlink()
        for cache in tree.guest_path(root, "/var/cache/apt").glob("*.bin"):
            cache.unlink()
        for directory in ("/tmp", "/var/tmp"):
            tree.remove_contents(root, directory)

    def _kernel(self) -> None:
        root = self.root
        kernel = tree.guest_path(root, "/vmlinuz")
        initrd = tree.guest_path(root, "/initrd.img")
        if not (kernel.is_file() and initrd.is_file()):
            kernels = sorted(tree.guest_path(root, "/boot").glob("vmlinuz-*"), key=_version_key)
            if not kernels:
                raise ImageBuildError("the image has no kernel in /boot",
                                      hint="linux-image-amd64 should have installed one; see the build log")
            kernel = kernels[-1]
            initrd = kernel.with_name("initrd.img-" + kernel.name[len("vmlinuz-"):])
        if not initrd.is_file():
            raise ImageBuildError(f"the image has no initrd for {kernel.name}",
                                  hint="initramfs-tools failed inside the tree; see the build log")
        self.kernel_version = kernel.name.removeprefix("vmlinuz-")
        for source, name in ((kernel, KERNEL), (initrd, INITRD)):
            shutil.copyfile(source, self.out / name)
            (self.out / name).chmod(0o644)

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
                raise ImageBuildError(f"mke2fs failed with exit status {code}: {_summary(tail, 3)}", hint=hint)
        _remove_tree(self.root)

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
                raise ImageBuildError(f"qemu-img convert failed with exit status {code}: {_summary(tail, 3)}")
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
        for entry in out.iterdir():
            entry.chmod(0o644)
        out.chmod(0o755)


def _mke2fs_has_orphan_file() -> bool:
    try:
        return "orphan_file" in Path("/etc/mke2fs.conf").read_text()
    except OSError:
        return False


def _version_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def iter_cached() -> Iterator[Path]:
    """Directories of finished images in the cache."""
    for entry in sorted(images_dir().iterdir()):
        if not entry.name.startswith(".") and entry.is_dir() and _complete(entry):
            yield entry
