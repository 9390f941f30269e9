"""One libvirt domain, with the operations labmgr performs on it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import libvirt

from ..errors import HypervisorError
from ..xml.templates import NAMESPACE
from .errors import translated

if TYPE_CHECKING:
    from .agent import GuestAgent
    from .connection import Hypervisor

_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "no state",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}

# libvirt's qemu driver keeps NVRAM files it makes from a template here (qemu.conf's nvram_dir).
NVRAM_DIRECTORY = "/var/lib/libvirt/qemu/nvram"

_UNDEFINE_EVERYTHING = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
)


@dataclass(frozen=True)
class JobProgress:
    processed: int
    total: int


class Domain:
    def __init__(self, hypervisor: "Hypervisor", dom: libvirt.virDomain) -> None:
        self.hypervisor = hypervisor
        self.dom = dom
        self.name = dom.name()

    def _what(self, action: str) -> str:
        return f"{action} domain '{self.name}'"

    @property
    def state(self) -> str:
        with translated(self._what("reading the state of")):
            return _STATES.get(self.dom.state()[0], "unknown")

    def is_active(self) -> bool:
        with translated(self._what("reading the state of")):
            return bool(self.dom.isActive())

    def xml(self, *, inactive: bool = True) -> str:
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        with translated(self._what("reading the XML of")):
            return self.dom.XMLDesc(flags)

    def nvram_path(self) -> str | None:
        """Where the domain's NVRAM is when firmware autoselection (``<os firmware='efi'>``) leaves it
        out of the inactive definition: in the live one, or libvirt's default for a shut-off domain."""
        from ..xml.builder import DomainXML

        if self.is_active():
            return DomainXML(self.xml(inactive=False)).os_file("nvram")
        return f"{NVRAM_DIRECTORY}/{self.name}_VARS.fd"

    def lab_metadata(self) -> str | None:
        """The labmgr tag of this domain, or None for domains labmgr did not make."""
        try:
            return self.dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NAMESPACE,
                                     libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        except libvirt.libvirtError:
            return None

    def start(self) -> None:
        with translated(self._what("starting")):
            self.dom.create()

    def destroy(self) -> None:
        """Power off at once (a lab VM has nothing worth a clean shutdown)."""
        with translated(self._what("stopping")):
            if self.dom.isActive():
                self.dom.destroy()

    def undefine(self) -> None:
        with translated(self._what("removing")):
            self.dom.undefineFlags(_UNDEFINE_EVERYTHING)

    # media ----------------------------------------------------------------
    def attach_device(self, device_xml: str) -> None:
        """Hot-plug a device into the running domain (not into its persistent definition)."""
        with translated(self._what("hot-plugging a device into")):
            self.dom.attachDeviceFlags(device_xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)

    def detach_device(self, device_xml: str) -> None:
        with translated(self._what("unplugging a device from")):
            self.dom.detachDeviceFlags(device_xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)

    # internal snapshots ---------------------------------------------------
    def create_snapshot(self, snapshot_xml: str) -> None:
        with translated(self._what("taking a snapshot of")):
            self.dom.snapshotCreateXML(snapshot_xml, libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC)

    def snapshot_names(self) -> list[str]:
        with translated(self._what("listing snapshots of")):
            return self.dom.snapshotListNames(0)

    def revert_to_snapshot(self, name: str) -> None:
        with translated(self._what(f"reverting to snapshot '{name}' of")):
            self.dom.revertToSnapshot(self.dom.snapshotLookupByName(name, 0), 0)

    def delete_snapshot(self, name: str) -> None:
        with translated(self._what(f"deleting snapshot '{name}' of")):
            self.dom.snapshotLookupByName(name, 0).delete(0)

    # saved running state ---------------------------------------------------
    def save_state(self, path: str) -> None:
        """Write memory and devices to ``path`` on the hypervisor's host; the domain stops (its
        definition stays). The disks are left exactly as the saved state expects them."""
        with translated(self._what("saving the running state of")):
            self.dom.saveFlags(str(path), None, libvirt.VIR_DOMAIN_SAVE_RUNNING)

    def define_persistent(self, xml: str) -> None:
        """Give a restored (transient) domain a persistent definition, so lab down finds it."""
        with translated(self._what("defining")):
            self.hypervisor.conn.defineXML(xml)

    # console evidence ------------------------------------------------------
    def screen_devices(self) -> tuple[int, int]:
        """(graphics devices, video devices) of the running definition."""
        from ..xml.builder import DomainXML

        devices = DomainXML(self.xml(inactive=False)).devices
        return len(devices.findall("graphics")), len(devices.findall("video"))

    def screenshot(self) -> tuple[str, bytes] | None:
        """The first screen as (mime type, bytes): QEMU answers with a PPM image. None when the
        VM has no graphics device (nothing to look at)."""
        graphics, video = self.screen_devices()
        if not graphics or not video:
            return None
        chunks: list[bytes] = []
        with translated(self._what("taking a screenshot of")):
            stream = self.hypervisor.conn.newStream(0)
            try:
                mime = self.dom.screenshot(stream, 0, 0)
                stream.recvAll(lambda _stream, data, sink: sink.append(data) or len(data), chunks)
                stream.finish()
            except libvirt.libvirtError:
                stream.abort()
                raise
        return mime or "image/x-portable-pixmap", b"".join(chunks)

    def serial_logs(self) -> list[str]:
        """The host files the running VM's serial ports log to."""
        from ..xml.builder import DomainXML

        devices = DomainXML(self.xml(inactive=False)).devices
        return [log.get("file") for node in devices.findall("serial") for log in node.findall("log")
                if log.get("file")]

    def agent(self, timeout: float = 10) -> "GuestAgent":
        from .agent import GuestAgent

        return GuestAgent(self, timeout=timeout)

    # consistent copies -----------------------------------------------------
    def freeze_filesystems(self) -> int:
        """Freeze the guest's filesystems through the agent; returns how many."""
        with translated(self._what("freezing the filesystems of")):
            return self.dom.fsFreeze()

    def thaw_filesystems(self) -> None:
        with translated(self._what("thawing the filesystems of")):
            self.dom.fsThaw()

    def begin_backup(self, backup_xml: str) -> None:
        with translated(self._what("starting a backup of")):
            self.dom.backupBegin(backup_xml, None, 0)

    def backup_targets(self) -> list[str]:
        """The files the domain's running backup job writes to ([] when it runs none)."""
        try:
            xml = self.dom.backupGetXMLDesc(0)
        except libvirt.libvirtError:
            return []
        from ..xml.builder import backup_targets

        return backup_targets(xml)

    def abort_job(self) -> None:
        """Cancel a running job (a backup); quiet if there is none."""
        try:
            self.dom.abortJob()
        except libvirt.libvirtError:
            pass

    def wait_for_backup(self, on_progress: Callable[[JobProgress], None] | None = None,
                        poll: float = 0.2) -> None:
        """Wait until the backup job ends; raise if it did not complete."""
        while True:
            with translated(self._what("watching the backup of")):
                stats = self.dom.jobStats(0)
            if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE:
                break
            if on_progress:
                on_progress(JobProgress(stats.get("disk_processed", 0), stats.get("disk_total", 0)))
            time.sleep(poll)
        with translated(self._what("reading the finished backup job of")):
            done = self.dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        if done.get("type") != libvirt.VIR_DOMAIN_JOB_COMPLETED:
            reason = done.get("errmsg") or "the job was cancelled or failed"
            raise HypervisorError(f"backup of domain '{self.name}' failed: {reason}")
        if on_progress:
            total = done.get("disk_total", 0)
            on_progress(JobProgress(total, total))
