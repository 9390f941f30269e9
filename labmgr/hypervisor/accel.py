"""Choose the virtualisation type of lab domains: KVM where it works, TCG otherwise.

``LABMGR_ACCEL`` (auto, kvm, tcg) overrides the spec's ``accel``. ``auto`` picks
KVM when libvirt offers it and, on a local hypervisor, /dev/kvm is usable by
QEMU and this host is not itself a guest (nested KVM often hangs guests).
"""

from __future__ import annotations

import grp
import os
from pathlib import Path
from urllib.parse import urlparse

from ..errors import HypervisorError, SpecError
from .connection import Hypervisor

CHOICES = ("auto", "kvm", "tcg")


def requested_accel(spec_accel: str) -> str:
    value = os.environ.get("LABMGR_ACCEL", "").strip().lower() or spec_accel
    if value not in CHOICES:
        raise SpecError(f"LABMGR_ACCEL={value!r} is not one of {', '.join(CHOICES)}")
    return value


def is_local(uri: str) -> bool:
    return not urlparse(uri).hostname


def kvm_device_usable(path: Path = Path("/dev/kvm")) -> bool:
    """True when QEMU, running as libvirt-qemu in group kvm, can open /dev/kvm."""
    try:
        st = path.stat()
    except OSError:
        return False
    try:
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        kvm_gid = None
    return bool(st.st_mode & 0o006) or (st.st_gid == kvm_gid and bool(st.st_mode & 0o060))


def running_nested() -> bool:
    try:
        return any(line.startswith("flags") and " hypervisor" in line
                   for line in Path("/proc/cpuinfo").read_text().splitlines())
    except OSError:
        return False


def choose_virt_type(spec_accel: str, hypervisor: Hypervisor) -> str:
    """The libvirt domain type for lab VMs: 'kvm' or 'qemu' (TCG)."""
    accel = requested_accel(spec_accel)
    if accel == "tcg":
        return "qemu"
    local = is_local(hypervisor.uri)
    kvm = hypervisor.supports_virt_type("kvm") and (not local or kvm_device_usable())
    if accel == "kvm":
        if not kvm:
            raise HypervisorError(f"accel kvm was asked for, but {hypervisor.uri} cannot run KVM guests",
                                  hint="'labmgr doctor' says why; or use accel: tcg (LABMGR_ACCEL=tcg)")
        return "kvm"
    return "kvm" if kvm and not (local and running_nested()) else "qemu"
