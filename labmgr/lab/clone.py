"""What a lab clone changes in production's domain definition, and nothing else.

Like virt-manager's cloner, the list is explicit. A lab domain is production's
domain with:

1. a new name (``<lab>-<server>``), a title, and no UUID or generation ID
   (libvirt makes new ones);
2. the labmgr tag in ``<metadata>`` (lab, environment, server, snapshot);
3. the virtualisation type the host can give (``kvm`` or ``qemu``/TCG); under
   TCG a host-derived CPU model is dropped;
4. memory and vCPUs from the spec when it gives them;
5. every disk on its own qcow2 overlay backed by the snapshot's copy, whatever
   production's disk was (file, block device, pool volume; qcow2 or raw);
   ``<shareable/>`` and ``<transient/>`` dropped (the overlay is the lab VM's
   alone, and the clean point already discards its changes), ``<readonly/>``
   kept; CD-ROMs and floppies left empty; a disk on the network refused;
6. kernel, initrd, loader and NVRAM from the snapshot / lab directory, never
   production's: the loader is the snapshot's read-only copy, the NVRAM the lab
   VM's own copy of the captured one (made explicit under ``<os firmware='efi'>``,
   whose firmware libvirt keeps choosing); an NVRAM template is dropped;
7. every NIC (network, bridge, direct/macvtap, ...) on the lab network of its
   spec NIC, keeping MAC, model and PCI address (so the guest sees the same
   hardware and keeps its interface names); an option ROM file dropped;
8. graphical consoles on the hypervisor's loopback with automatic ports;
   serial devices that reach the network or host files become ptys;
   every ``<log file>`` of a serial port, console or channel becomes a file in
   the lab's directory, and a serial port without one gets one there (the
   console evidence of every probe run reads its last lines);
9. unix channel sockets chosen afresh (the guest agent's channel is kept);
   channels to the host's network or files (tcp, udp, file, pipe, dev,
   guestfwd) removed;
10. host devices, shared host directories (``<filesystem>``), smartcards,
    redirected USB and shared memory removed: they would reach the host or
    production; a pass-through TPM removed (an emulated one kept, with a fresh
    state); an EGD random-number back-end (a socket or the network) replaced by
    QEMU's builtin one;
11. a virtio-scsi controller, for hot-plugging media later.

Raw QEMU arguments (``<qemu:commandline>``, ``<qemu:override>``) are refused:
labmgr cannot tell what they reach. Last, every host path the lab names is
checked against production's: one left over is refused, never defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import LabError
from ..spec import Server
from ..xml import devices as device_edits
from ..xml.builder import DomainXML, LabTag

PASS_THROUGH_DEVICES = ("hostdev", "filesystem", "redirdev", "smartcard", "shmem")


def check_nics(domain: DomainXML, server: Server) -> None:
    """Production's NICs and the spec's must be the same set of MACs."""
    actual = {nic.mac for nic in domain.interfaces()}
    declared = {nic.mac for nic in server.nics}
    for mac in sorted(declared - actual):
        raise LabError(f"server {server.name}: production domain '{server.domain}' has no NIC with MAC {mac}",
                       hint="fix the MAC in the spec")
    for mac in sorted(actual - declared):
        raise LabError(f"server {server.name}: production domain '{server.domain}' has a NIC with MAC {mac} "
                       "that the spec does not declare",
                       hint="declare it under the server's nics, so the lab knows which lab network it joins")


@dataclass(frozen=True)
class CloneInputs:
    lab: str
    environment: str
    snapshot: str
    server: Server
    domain_name: str
    virt_type: str                      # "kvm" or "qemu"
    overlays: dict[str, Path]           # disk target -> overlay image
    os_files: dict[str, Path]           # kernel/initrd/loader/nvram -> lab-side path
    networks: dict[str, str]            # spec network name -> lab libvirt network name
    directory: Path | None = None       # the lab server's own directory (log files)


def derive_lab_domain(production_xml: str, inputs: CloneInputs) -> str:
    domain = DomainXML(production_xml)
    server = inputs.server
    check_nics(domain, server)
    refuse_qemu_passthrough(domain, server)

    domain.set_name(inputs.domain_name)
    domain.set_title(f"labmgr lab {inputs.lab}: {server.name} ({server.hostname})")
    domain.drop_identity()
    domain.set_tag(LabTag(lab=inputs.lab, environment=inputs.environment,
                          server=server.name, snapshot=inputs.snapshot))

    domain.set_virt_type(inputs.virt_type)
    if inputs.virt_type == "qemu":
        domain.drop_host_cpu()
    if server.memory:
        domain.set_memory_mib(server.memory)
    if server.vcpus:
        domain.set_vcpus(server.vcpus)

    for disk in domain.disks():
        if disk.kind == "network" and disk.device not in ("cdrom", "floppy"):
            raise network_disk_error(server.name, disk)
        if disk.target in inputs.overlays:
            domain.set_disk_file(disk.target, inputs.overlays[disk.target])
            domain.drop_disk_flags(disk.target, "shareable", "transient")
        elif disk.device in ("cdrom", "floppy"):
            domain.eject(disk.target)
        else:
            raise LabError(f"server {server.name}: disk {disk.target} has no copy in snapshot {inputs.snapshot}")
    for tag, path in inputs.os_files.items():
        domain.set_os_file(tag, path)

    for nic in server.nics:
        domain.put_interface_on_network(nic.mac, inputs.networks[nic.network])

    domain.graphics_on_loopback()
    domain.char_devices_to_pty()
    devices = domain.devices
    if inputs.directory is not None:
        device_edits.own_log_files(devices, inputs.directory)
        device_edits.log_serial_consoles(devices, inputs.directory)
    domain.fresh_channel_sockets()
    device_edits.drop_outside_channels(devices)
    device_edits.rng_builtin(devices)
    device_edits.drop_tpm_passthrough(devices)
    device_edits.drop_rom_files(devices)
    domain.remove_devices(*PASS_THROUGH_DEVICES)
    domain.ensure_controller("scsi", "virtio-scsi")
    check_own_paths(production_xml, domain, server.name)
    return str(domain)


def refuse_qemu_passthrough(domain: DomainXML, server: Server) -> None:
    raw = device_edits.qemu_passthrough(domain.root)
    if raw:
        raise LabError(f"server {server.name}: production domain '{server.domain}' passes raw arguments to "
                       f"QEMU (<qemu:{raw[0]}>); labmgr cannot tell whether they reach outside the lab",
                       hint="remove them from production's definition, or make them libvirt devices")


def network_disk_error(server: str, disk) -> LabError:
    return LabError(f"server {server}: disk {disk.target} is on the network ({disk.network}); "
                    "labmgr copies only file, block and volume disks",
                    hint="copy its data onto a local disk of the server, or leave it out of the lab")


def check_own_paths(production_xml: str, lab: DomainXML, server: str) -> None:
    """No host path of production's definition may be left in the lab's (the emulator aside)."""
    production = device_edits.host_paths(DomainXML(production_xml).root)
    for path, where in device_edits.host_paths(lab.root).items():
        if path in production:
            raise LabError(f"server {server}: the lab would still use production's {path} ({where})",
                           hint="this is a labmgr defect: report it with the domain's XML")


@dataclass(frozen=True)
class ResumeInputs:
    lab: str
    environment: str
    snapshot: str
    server: Server
    domain_name: str
    uuid: str
    overlays: dict[str, Path]
    nvram: Path | None
    networks: dict[str, str]
    directory: Path | None = None       # the lab server's own directory (log files)


def resume_lab_domain(template_xml: str, inputs: ResumeInputs) -> str:
    """What a lab resumed from a warm template changes in the template VM's saved definition
    (which already carries every change above): only what makes it this lab's own VM —
    name, title, UUID, tag, overlays, NVRAM and lab networks. Devices, their addresses and
    the machine type stay exactly as saved: the resumed memory expects them."""
    domain = DomainXML(template_xml)
    server = inputs.server
    domain.set_name(inputs.domain_name)
    domain.set_title(f"labmgr lab {inputs.lab}: {server.name} ({server.hostname})")
    domain.set_uuid(inputs.uuid)
    domain.set_tag(LabTag(lab=inputs.lab, environment=inputs.environment,
                          server=server.name, snapshot=inputs.snapshot))
    for target, overlay in inputs.overlays.items():
        domain.set_disk_file(target, overlay)
    if inputs.nvram is not None:
        domain.set_os_file("nvram", inputs.nvram)
    for nic in server.nics:
        domain.put_interface_on_network(nic.mac, inputs.networks[nic.network])
    if inputs.directory is not None:      # the template's log files are the template's
        device_edits.own_log_files(domain.devices, inputs.directory)
    return str(domain)
