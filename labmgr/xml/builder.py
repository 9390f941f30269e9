"""The one builder: parse libvirt XML, edit it with small named operations, serialise.

Decisions (what a lab clone changes) live in ``labmgr.lab.clone``; this module
only knows how to make each change correctly in the XML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from ..errors import SpecError
from .templates import NAMESPACE, render

_PARSER = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)


def parse(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode(), parser=_PARSER)


def serialise(root: etree._Element) -> str:
    return etree.tostring(root, pretty_print=True, encoding="unicode")


# libvirt's memory units (case-insensitive): decimal for KB/MB/..., binary for k/KiB/M/MiB/...
_UNITS = {"b": 1, "bytes": 1, "kb": 10**3, "k": 2**10, "kib": 2**10, "mb": 10**6, "m": 2**20, "mib": 2**20,
          "gb": 10**9, "g": 2**30, "gib": 2**30, "tb": 10**12, "t": 2**40, "tib": 2**40}


@dataclass(frozen=True)
class Disk:
    target: str           # vda, sdb, ...
    device: str           # disk, cdrom, floppy, lun
    kind: str             # file, block, volume, network
    source: str | None    # path for file/block disks
    driver_type: str | None
    readonly: bool
    pool: str | None = None       # a volume disk's storage pool and volume
    volume: str | None = None
    network: str | None = None    # a network disk's protocol://host/name, for messages


@dataclass(frozen=True)
class Interface:
    mac: str
    kind: str


@dataclass(frozen=True)
class LabTag:
    lab: str
    environment: str
    server: str | None = None
    snapshot: str | None = None
    owner: str | None = None          # the state directory that made it (paths.owner_id); None: made before owners


def tag_element(tag: LabTag) -> etree._Element:
    from .. import paths

    return render("metadata", lab=tag.lab, environment=tag.environment,
                  server=tag.server, snapshot=tag.snapshot, owner=tag.owner or paths.owner_id())


def read_tag(root_or_fragment: etree._Element | str | None) -> LabTag | None:
    """Read the labmgr tag from a whole object's XML, or from the fragment that
    libvirt's metadata API returns (the same element, without its namespace)."""
    if root_or_fragment is None:
        return None
    root = parse(root_or_fragment) if isinstance(root_or_fragment, str) else root_or_fragment
    if root.tag in (f"{{{NAMESPACE}}}lab", "lab"):
        node, ns = root, root.tag[: -len("lab")]
    else:
        node, ns = root.find(f"metadata/{{{NAMESPACE}}}lab"), f"{{{NAMESPACE}}}"
    if node is None:
        return None

    def text(name: str) -> str | None:
        child = node.find(f"{ns}{name}")
        return child.text if child is not None else None

    return LabTag(lab=text("name") or "", environment=text("environment") or "",
                  server=text("server"), snapshot=text("snapshot"), owner=text("owner"))


def network_xml(name: str, bridge: str, tag: LabTag | None) -> str:
    """An isolated network; ``tag`` marks it as part of a lab."""
    root = render("network", name=name, bridge=bridge)
    if tag:
        _metadata(root).append(tag_element(tag))
    return serialise(root)


def guest_domain_xml(**context: object) -> str:
    """A new guest from ``network_templates/domain.xml.j2`` (demo production and tests)."""
    return serialise(render("domain", **context))


def firmware_domain_xml(**context: object) -> str:
    """A firmware-booted guest from ``network_templates/firmware-domain.xml.j2`` (test production)."""
    return serialise(render("firmware-domain", **context))


def pool_xml(name: str, path: Path) -> str:
    return serialise(render("pool", name=name, path=str(path)))


def backup_xml(disks: list[tuple[str, Path | None]]) -> str:
    """Push-mode backup of each (target, destination); destination None = leave out."""
    return serialise(render("domainbackup", disks=[
        {"name": target, "target_file": str(dest) if dest else None} for target, dest in disks]))


def backup_targets(domainbackup_xml: str) -> list[str]:
    """The files a running backup job (libvirt's domainbackup XML) writes to."""
    return [t.get("file") for t in parse(domainbackup_xml).iter("target") if t.get("file")]


def cdrom_xml(path: Path, target: str, device: str = "cdrom", format: str = "raw") -> str:
    """A read-only medium on the SCSI bus: a CD-ROM, or (device="disk") a plain disk; raw or qcow2."""
    return serialise(render("cdrom", path=str(path), target=target, device=device, format=format))


def snapshot_xml(name: str, description: str) -> str:
    return serialise(render("domainsnapshot", name=name, description=description))


def free_scsi_target(domain_xml: str) -> str:
    """The first sdX name no disk of the domain uses."""
    used = {t.get("dev") for t in parse(domain_xml).iterfind("devices/disk/target")}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        if f"sd{letter}" not in used:
            return f"sd{letter}"
    raise KeyError("no free SCSI target")


def _metadata(root: etree._Element) -> etree._Element:
    metadata = root.find("metadata")
    if metadata is None:
        metadata = etree.Element("metadata")
        # libvirt's schema wants <metadata> early in a network: right after <name>/<uuid>.
        anchor = root.find("uuid") if root.find("uuid") is not None else root.find("name")
        anchor.addnext(metadata)
    return metadata


class DomainXML:
    """A domain definition being edited."""

    def __init__(self, xml: str) -> None:
        self.root = parse(xml)
        if self.root.tag != "domain":
            raise SpecError(f"expected a <domain> definition, found <{self.root.tag}>")

    def __str__(self) -> str:
        return serialise(self.root)

    # reading ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.root.findtext("name", "")

    @property
    def devices(self) -> etree._Element:
        devices = self.root.find("devices")
        if devices is None:
            devices = etree.SubElement(self.root, "devices")
        return devices

    def disks(self) -> list[Disk]:
        out = []
        for disk in self.devices.findall("disk"):
            source = disk.find("source")
            path = None
            if source is not None:
                path = source.get("file") or source.get("dev")
            driver = disk.find("driver")
            pool = volume = network = None
            if source is not None and disk.get("type") == "volume":
                pool, volume = source.get("pool"), source.get("volume")
            if source is not None and disk.get("type") == "network":
                host = source.find("host")
                server = host.get("name", "") if host is not None else ""
                network = f"{source.get('protocol', '?')}://{server}/{source.get('name', '')}"
            out.append(Disk(
                target=disk.find("target").get("dev"),
                device=disk.get("device", "disk"),
                kind=disk.get("type", "file"),
                source=path,
                driver_type=driver.get("type") if driver is not None else None,
                readonly=disk.find("readonly") is not None,
                pool=pool, volume=volume, network=network,
            ))
        return out

    def interfaces(self) -> list[Interface]:
        out = []
        for nic in self.devices.findall("interface"):
            mac = nic.find("mac")
            out.append(Interface(mac=(mac.get("address") if mac is not None else "").lower(),
                                 kind=nic.get("type", "")))
        return out

    def memory_bytes(self) -> int:
        """The domain's <memory>, in bytes (libvirt's units; KiB when none is given)."""
        node = self.root.find("memory")
        if node is None or not (node.text or "").strip():
            return 0
        return int(node.text.strip()) * _UNITS.get((node.get("unit") or "KiB").lower(), 1024)

    def os_file(self, tag: str) -> str | None:
        """Path of <os><kernel>, <initrd>, <loader> or <nvram>, if any."""
        node = self.root.find(f"os/{tag}")
        return node.text.strip() if node is not None and node.text else None

    def firmware(self) -> str | None:
        """``efi`` or ``bios`` when libvirt chooses the firmware (``<os firmware=...>``)."""
        node = self.root.find("os")
        return node.get("firmware") if node is not None else None

    def tag(self) -> LabTag | None:
        return read_tag(self.root)

    # editing ---------------------------------------------------------------
    def set_name(self, name: str) -> None:
        self.root.find("name").text = name

    def set_title(self, title: str) -> None:
        node = self.root.find("title")
        if node is None:
            node = etree.Element("title")
            self.root.find("name").addnext(node)
        node.text = title

    def drop_identity(self) -> None:
        """Forget UUID and VM generation ID so libvirt gives the copy new ones."""
        for tag in ("uuid", "genid"):
            for node in self.root.findall(tag):
                self.root.remove(node)

    def set_uuid(self, uuid: str) -> None:
        node = self.root.find("uuid")
        if node is None:
            node = etree.Element("uuid")
            self.root.find("name").addnext(node)
        node.text = uuid

    def set_tag(self, tag: LabTag) -> None:
        metadata = _metadata(self.root)
        for old in metadata.findall(f"{{{NAMESPACE}}}lab"):
            metadata.remove(old)
        metadata.append(tag_element(tag))

    def set_virt_type(self, virt_type: str) -> None:
        self.root.set("type", virt_type)

    def drop_host_cpu(self) -> None:
        """Remove a CPU model that only hardware virtualisation can give (host-passthrough/-model)."""
        cpu = self.root.find("cpu")
        if cpu is not None and cpu.get("mode") in ("host-passthrough", "host-model", "maximum"):
            self.root.remove(cpu)
        features = self.root.find("features")
        if features is not None:
            for node in features.findall("kvm"):
                features.remove(node)

    def set_memory_mib(self, mib: int) -> None:
        for tag in ("memory", "currentMemory"):
            node = self.root.find(tag)
            if node is not None:
                node.set("unit", "MiB")
                node.text = str(mib)

    def set_vcpus(self, count: int) -> None:
        node = self.root.find("vcpu")
        node.text = str(count)
        node.attrib.pop("current", None)
        cpu = self.root.find("cpu")
        if cpu is not None:
            for topology in cpu.findall("topology"):
                cpu.remove(topology)

    def set_os_file(self, tag: str, path: Path) -> None:
        """Point <os><tag> at ``path``; an NVRAM is made explicit when firmware autoselection left it out."""
        os_node = self.root.find("os")
        node = os_node.find(tag)
        if node is None:
            node = etree.Element(tag)
            anchor = os_node.find("loader") if tag == "nvram" else None
            (anchor if anchor is not None else os_node.find("type")).addnext(node)
        node.attrib.pop("template", None)      # a host file the lab never reads: its NVRAM is a copy
        node.text = str(path)

    def set_disk_file(self, target: str, path: Path, driver_type: str = "qcow2") -> None:
        """Point disk ``target`` at a local image file, whatever its source was."""
        disk = self._disk(target)
        disk.set("type", "file")
        for tag in ("source", "backingStore", "auth", "encryption", "reservations"):
            for node in disk.findall(tag):
                disk.remove(node)
        driver = disk.find("driver")
        if driver is None:
            driver = etree.Element("driver", name="qemu")
            disk.insert(0, driver)
        driver.set("type", driver_type)
        driver.addnext(etree.Element("source", file=str(path)))

    def drop_disk_flags(self, target: str, *flags: str) -> list[str]:
        """Remove flag elements such as <shareable/> or <transient/> from disk ``target``."""
        disk = self._disk(target)
        dropped = []
        for flag in flags:
            for node in disk.findall(flag):
                disk.remove(node)
                dropped.append(flag)
        return dropped

    def eject(self, target: str) -> None:
        """Leave a CD-ROM or floppy drive empty."""
        disk = self._disk(target)
        for node in disk.findall("source"):
            disk.remove(node)
        disk.set("type", "file")

    def _disk(self, target: str) -> etree._Element:
        for disk in self.devices.findall("disk"):
            if disk.find("target").get("dev") == target:
                return disk
        raise KeyError(target)

    def put_interface_on_network(self, mac: str, network: str) -> None:
        """Replace the NIC with ``mac`` by one on ``network``, keeping MAC, model and PCI address."""
        for old in self.devices.findall("interface"):
            mac_node = old.find("mac")
            if mac_node is None or mac_node.get("address", "").lower() != mac:
                continue
            new = render("interface", mac=mac, network=network)
            for tag in ("model", "driver", "address", "rom", "mtu", "boot"):
                for node in old.findall(tag):
                    new.append(node)
            old.addprevious(new)
            self.devices.remove(old)
            return
        raise KeyError(mac)

    def graphics_on_loopback(self) -> None:
        for graphics in self.devices.findall("graphics"):
            if graphics.get("type") not in ("vnc", "spice"):
                continue
            for attr in ("port", "tlsPort", "listen", "websocket"):
                graphics.attrib.pop(attr, None)
            graphics.set("autoport", "yes")
            for node in graphics.findall("listen"):
                graphics.remove(node)
            graphics.insert(0, render("graphics-listen"))

    def remove_devices(self, *tags: str) -> list[str]:
        removed = []
        for tag in tags:
            for node in self.devices.findall(tag):
                self.devices.remove(node)
                removed.append(tag)
        return removed

    def char_devices_to_pty(self) -> None:
        """Serial/console devices that talk to the network or host files become ptys."""
        for tag in ("serial", "console", "parallel"):
            for node in self.devices.findall(tag):
                if node.get("type") not in ("pty", "null"):
                    node.set("type", "pty")
                    for child in node.findall("source") + node.findall("protocol") + node.findall("log"):
                        node.remove(child)

    def fresh_channel_sockets(self) -> None:
        """Let libvirt choose new socket paths for unix channels (the guest agent's among them)."""
        for channel in self.devices.findall("channel"):
            if channel.get("type") == "unix":
                for source in channel.findall("source"):
                    channel.remove(source)

    def ensure_controller(self, kind: str, model: str) -> None:
        for controller in self.devices.findall("controller"):
            if controller.get("type") == kind and controller.get("model") == model:
                return
        self.devices.append(render(f"{kind}-controller"))
