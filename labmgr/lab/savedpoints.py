"""Points in time of VMs with UEFI firmware in pflash, which libvirt 9.0 will not
snapshot internally ("internal snapshots of a VM with pflash based firmware are
not supported").

A point is a directory next to the VM's NVRAM, ``points/<name>/``: the guest's
running state (``virsh save``), a copy of each of its writable disk overlays and
of its NVRAM, taken while the guest is stopped by the save, so all three are of
one instant. Reverting stops the guest, puts the copies back and restores the
state: the guest runs on exactly where it was, as after an internal snapshot's
revert. Points are independent copies (an overlay holds only what the lab wrote
over the snapshot's image, so they stay small); dropping one deletes its
directory. Everything lives in the lab's directory, so ``lab down`` removes it.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from ..errors import LabError
from ..hosts import host_for
from ..hypervisor import Domain
from ..xml.builder import DomainXML

STATE = "state"


def take(domain: Domain, name: str) -> None:
    disks, nvram = _files(domain)
    folder = _folder(nvram, name)
    partial = folder.with_name(f".partial-{name}")
    with host_for(domain.hypervisor.uri) as host:
        for stale in (partial, folder):
            if host.exists(stale):
                host.remove_tree(stale)
        host.mkdir(partial)
        domain.save(str(partial / STATE))       # stops the guest: disks and NVRAM are quiet
        try:
            for path in [*disks, nvram]:
                host.copy(path, partial / PurePosixPath(path).name)
            host.rename(partial, folder)        # a point exists whole or not at all
        finally:
            domain.restore(str(folder / STATE) if host.exists(folder) else str(partial / STATE))


def revert(domain: Domain, name: str) -> None:
    disks, nvram = _files(domain)
    folder = _folder(nvram, name)
    with host_for(domain.hypervisor.uri) as host:
        if not host.exists(folder / STATE):
            raise LabError(f"'{domain.name}' has no point '{name}' to go back to",
                           hint="'labmgr lab down' the lab and bring it up again")
        domain.destroy()
        for path in [*disks, nvram]:
            host.copy(folder / PurePosixPath(path).name, path)
        domain.restore(str(folder / STATE))


def drop(domain: Domain, name: str) -> None:
    _, nvram = _files(domain)
    with host_for(domain.hypervisor.uri) as host:
        folder = _folder(nvram, name)
        if host.exists(folder):
            host.remove_tree(folder)


def _files(domain: Domain) -> tuple[list[str], str]:
    """The guest's writable file disks (its lab overlays) and its NVRAM, from the running definition."""
    xml = DomainXML(domain.xml(inactive=False))
    disks = [d.source for d in xml.disks() if d.device == "disk" and d.kind == "file" and d.source
             and not d.readonly]
    nvram = xml.os_file("nvram")
    if not nvram:
        raise LabError(f"'{domain.name}' has pflash firmware but no NVRAM file",
                       hint="capture production again: its NVRAM is copied with the snapshot")
    return disks, nvram


def _folder(nvram: str, name: str) -> PurePosixPath:
    return PurePosixPath(nvram).parent / "points" / name
