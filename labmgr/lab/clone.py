"""What a lab clone changes in production's domain definition, and nothing else.

Like virt-manager's cloner, the list is explicit. A lab domain is production's
domain with:

1. a new name (``<lab>-<server>``), a title, and no UUID or generation ID
   (libvirt makes new ones);
2. the labmgr tag in ``<metadata>`` (lab, environment, server, snapshot);
3. the virtualisation type the host can give (``kvm`` or ``qemu``/TCG); under
   TCG a host-derived CPU model is dropped;
4. memory and vCPUs from the spec when it gives them;
5. every disk on its own qcow2 overlay backed by the snapshot's copy;
   CD-ROMs and floppies left empty;
6. kernel, initrd and NVRAM from the snapshot / lab directory, never production's;
7. every NIC on the lab network of its spec NIC, keeping MAC, model and PCI
   address (so the guest sees the same hardware and keeps its interface names);
8. graphical consoles on the hypervisor's loopback with automatic ports;
   serial devices that reach the network become ptys;
9. unix channel sockets chosen afresh (the guest agent's channel is kept);
10. host devices, shared host directories and smartcards/redirected USB removed:
    they would reach the host or production;
11. a virtio-scsi controller, for hot-plugging media later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import LabError
from ..spec import Server
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
    os_files: dict[str, Path]           # kernel/initrd/nvram -> lab-side path
    networks: dict[str, str]            # spec network name -> lab libvirt network name


def derive_lab_domain(production_xml: str, inputs: CloneInputs) -> str:
    domain = DomainXML(production_xml)
    server = inputs.server
    check_nics(domain, server)

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
        if disk.target in inputs.overlays:
            domain.set_disk_file(disk.target, inputs.overlays[disk.target])
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
    domain.fresh_channel_sockets()
    domain.remove_devices(*PASS_THROUGH_DEVICES)
    domain.ensure_controller("scsi", "virtio-scsi")
    return str(domain)


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
    return str(domain)
