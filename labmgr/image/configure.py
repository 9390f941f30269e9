"""The configure stage of a build: the guest's system files, users, services and recipe commands, and its kernel."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Callable

from ..errors import ImageBuildError
from . import tree
from .cache import INITRD, KERNEL
from .recipe import BASE_SERVICES
from .runner import summary
from .stage import BuildState

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
# Modules udev would load for emulated hardware a lab guest never uses; each costs
# boot time under TCG (floppy probing, nested KVM, wireless regulatory, beeper).
MODPROBE_FILE = "/etc/modprobe.d/labmgr-lab-guest.conf"
BLACKLISTED_MODULES = ("floppy", "pcspkr", "kvm", "kvm_amd", "kvm_intel", "cfg80211")


class ConfigureStage(BuildState):
    """Part of a build (``build._Build``); what it reads of the build is in ``BuildState``."""

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
                                            f"cannot create user '{user.name}': {summary(tail, 2)}")
            if user.password is not None:
                # The guest's own chpasswd hashes it (yescrypt/SHA-512 per its PAM config);
                # the password goes through stdin, never on a command line.
                code, tail = self._chroot("chpasswd", stdin=f"{user.name}:{user.password}\n".encode())
                if code:
                    raise self.recipe.error(("users", i, "password"),
                                            f"cannot set the password of '{user.name}': {summary(tail, 2)}")
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
                raise self.recipe.error(("services", i), f"cannot enable '{service}': {summary(tail, 2)}",
                                        hint="the package that ships the unit must be in packages")

    def _systemctl(self, verb: str, units: list[str]) -> None:
        code, tail = self._chroot("systemctl", verb, *units)
        if code:
            raise ImageBuildError(f"systemctl {verb} {' '.join(units)} failed in the image: {summary(tail, 3)}")

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
                                                         f"{summary(tail, 3)}")

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


def _version_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]
