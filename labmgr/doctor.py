"""`labmgr doctor`: check what labmgr needs, and give the fix for each problem."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from pathlib import Path

from . import paths
from .check import MIN_FREE_GIB, Check
from .errors import LabmgrError
from .hypervisor import connect
from .hypervisor.accel import is_local, kvm_device_usable, requested_accel, running_nested
from .remote.checks import remote_checks
from .spec import Environment

__all__ = ["Check", "run_checks"]


def run_checks(uri: str, env: Environment | None = None) -> list[Check]:
    checks = [_tool("qemu-img", "qemu-utils"), _tool("debootstrap", "debootstrap"),
              _tool("mke2fs", "e2fsprogs"), _tool("virt-xml-validate", "libvirt-clients")]
    if env is not None and any(n.dhcp or n.dns for n in env.networks):     # the lab's DHCP and DNS
        checks.append(_tool("dnsmasq", "dnsmasq-base"))
    checks.append(_libvirt(uri))
    checks.append(_accel(uri, env))
    checks.append(_kvm_device())
    checks.append(_state_dir_access())
    checks.append(_free_disk())
    remote = [u for u in dict.fromkeys([uri, *(s.uri for s in env.hypervisors)] if env else [uri]) if not is_local(u)]
    if remote:
        for each in remote:
            checks += remote_checks(each, env)
    return checks


def _tool(command: str, package: str) -> Check:
    found = shutil.which(command)
    if found:
        return Check(command, "ok", found)
    return Check(command, "fail", "not found", f"apt-get install {package}")


def _libvirt(uri: str) -> Check:
    try:
        with connect(uri) as hypervisor:
            version = hypervisor.libvirt_version()
    except LabmgrError as exc:
        return Check("libvirt", "fail", str(exc.message),
                     "mkdir -p /run/libvirt; virtlogd -d; libvirtd -d (or systemctl start libvirtd)")
    return Check("libvirt", "ok", f"{uri} answers (libvirt {version})")


def _accel(uri: str, env: Environment | None) -> Check:
    try:
        accel = requested_accel(env.accel if env else "auto")
        with connect(uri) as hypervisor:
            kvm_offered = hypervisor.supports_virt_type("kvm")
    except LabmgrError as exc:
        return Check("acceleration", "fail", str(exc.message), "see the libvirt check")
    if accel == "tcg":
        return Check("acceleration", "ok", "TCG (software emulation) as configured; slower than KVM")
    usable = kvm_offered and (not is_local(uri) or kvm_device_usable())
    if usable and is_local(uri) and running_nested():
        return Check("acceleration", "warn" if accel == "kvm" else "ok",
                     "this host is itself a virtual machine: auto uses TCG, because nested KVM often hangs guests",
                     "set accel: kvm (or LABMGR_ACCEL=kvm) if nested KVM works here")
    if usable:
        return Check("acceleration", "ok", "KVM")
    status = "fail" if accel == "kvm" else "warn"
    return Check("acceleration", status, "KVM is not usable; labs will run under TCG (slow)",
                 "load kvm_intel/kvm_amd, and 'chgrp kvm /dev/kvm; chmod 660 /dev/kvm'")


def _kvm_device() -> Check:
    device = Path("/dev/kvm")
    if not device.exists():
        return Check("/dev/kvm", "warn", "missing (no hardware virtualisation)",
                     "enable VT-x/AMD-V in the firmware, then 'modprobe kvm_intel' or 'modprobe kvm_amd'")
    if kvm_device_usable(device):
        return Check("/dev/kvm", "ok", f"mode {stat.filemode(device.stat().st_mode)}, usable by group kvm")
    return Check("/dev/kvm", "fail", f"mode {stat.filemode(device.stat().st_mode)}: QEMU (libvirt-qemu) cannot "
                 "open it, and libvirt then re-probes QEMU on every call (minutes per lab domain)",
                 "chgrp kvm /dev/kvm; chmod 660 /dev/kvm")


def _state_dir_access() -> Check:
    root = paths.state_dir()
    paths.make_traversable(root)
    try:
        user = pwd.getpwnam("libvirt-qemu")
    except KeyError:
        return Check("image permissions", "warn", "no libvirt-qemu user; cannot check", "")
    blocked = [d for d in [root, *root.parents] if not _can_enter(d, user)]
    if blocked:
        return Check("image permissions", "fail", f"libvirt-qemu cannot enter {blocked[0]}",
                     f"chmod o+x {blocked[0]} (or set LABMGR_STATE_DIR elsewhere)")
    unreadable = [p for p in root.rglob("*.qcow2") if not _can_read(p, user)][:1]
    if unreadable:
        return Check("image permissions", "fail", f"libvirt-qemu cannot read {unreadable[0]}",
                     f"chmod o+r {unreadable[0]}")
    return Check("image permissions", "ok", f"{root} is reachable by libvirt-qemu")


def _can_enter(directory: Path, user: pwd.struct_passwd) -> bool:
    st = directory.stat()
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == user.pw_gid or st.st_gid in os.getgrouplist(user.pw_name, user.pw_gid):
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _can_read(path: Path, user: pwd.struct_passwd) -> bool:
    st = path.stat()
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & stat.S_IRUSR)
    if st.st_gid in os.getgrouplist(user.pw_name, user.pw_gid):
        return bool(st.st_mode & stat.S_IRGRP)
    return bool(st.st_mode & stat.S_IROTH)


def _free_disk() -> Check:
    root = paths.state_dir()
    free = shutil.disk_usage(root).free / 2**30
    if free < MIN_FREE_GIB:
        return Check("free disk", "warn", f"{free:.1f} GiB free under {root}",
                     f"free space, or point LABMGR_STATE_DIR at a disk with {MIN_FREE_GIB} GiB or more")
    return Check("free disk", "ok", f"{free:.0f} GiB free under {root}")
