"""A production of firmware-booted servers, as customers run them (issue 11), on this machine.

Unlike ``production.py`` (direct kernel boot, one qcow2, systemd-networkd), its
servers boot from their own partitioned disks through firmware (``firmware.py``),
keep data on a raw disk that is a libvirt storage pool volume, sit on a libvirt
network, a Linux bridge libvirt does not manage, or macvtap on a veth link,
take static addresses from ifupdown or NetworkManager, and log their serial consoles to host files.
A BIOS server's root disk is a loop device (``<disk type='block'>``: this kernel
has no device-mapper for LVM). Every host object is named with the prefix and
removed by ``remove``.
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import paths
from ..errors import LabmgrError
from ..hypervisor import Domain, Hypervisor
from ..image import BuiltImage
from ..xml.builder import firmware_domain_xml, network_xml, pool_xml
from . import firmware

# Moving MariaDB's files onto the data disk (labelled 'data'; no lost+found, which
# mysqldump --all-databases would trip on), as an administrator would.
MOVE_MARIADB = """set -e
mkfs.ext4 -q -F -L data /dev/vdb
systemctl stop mariadb
mount /dev/vdb /mnt
cp -a /var/lib/mysql/. /mnt/
rmdir /mnt/lost+found
umount /mnt
echo 'LABEL=data /var/lib/mysql ext4 defaults 0 2' >> /etc/fstab
mount /var/lib/mysql
systemctl start mariadb
"""


@dataclass(frozen=True)
class FwNic:
    network: str          # the spec's network name
    ip: str
    mac: str
    kind: str             # how production attaches it: network, bridge or direct


@dataclass(frozen=True)
class FwServer:
    name: str
    hostname: str
    boot: str             # uefi (<os firmware='efi'>), uefi-explicit (<loader> + <nvram>) or bios
    nics: tuple[FwNic, ...]
    memory: int = 512
    root_kind: str = "file"   # file (qcow2) or block (a loop device over a raw file)
    data_disk_mib: int = 0    # a raw volume in production's storage pool, MariaDB's data on it
    addresses: str = "ifupdown"   # who sets the static addresses: ifupdown or networkmanager (keyfiles)


@dataclass
class FirmwareProduction:
    prefix: str
    networks: dict[str, str]          # spec network -> CIDR; 'lan' is a libvirt network
    servers: list[FwServer]
    uri: str = "qemu:///system"
    virt_type: str = "qemu"
    boot_timeout: float = 400
    directory: Path = field(init=False)

    def __post_init__(self) -> None:
        self.directory = paths.subdir("production") / self.prefix

    # names of everything production has on the host
    @property
    def lan(self) -> str:
        return f"{self.prefix}-lan"

    @property
    def host_bridge(self) -> str:          # a bridge libvirt does not manage
        return f"{self.prefix}-br0"[:15]

    @property
    def lower_link(self) -> str:           # macvtap's lower link
        return f"{self.prefix}-mv0"[:14]

    @property
    def pool(self) -> str:
        return f"{self.prefix}-pool"

    def domain_name(self, server: FwServer) -> str:
        return f"{self.prefix}-{server.name}"

    def log_file(self, server: FwServer) -> Path:
        return self.directory / f"{server.name}-serial.log"

    def root_file(self, server: FwServer) -> Path:
        return self.directory / f"{server.name}-root.{'raw' if server.root_kind == 'block' else 'qcow2'}"

    def data_file(self, server: FwServer) -> Path:
        return self.directory / "pool" / f"{server.name}-data.raw"

    def nvram_file(self, server: FwServer) -> Path:
        return self.directory / f"{server.name}_VARS.fd"

    def spec(self) -> dict:
        return {
            "name": self.prefix,
            "hypervisor": self.uri,
            "networks": [{"name": name, "cidr": cidr} for name, cidr in self.networks.items()],
            "servers": [{"name": s.name, "hostname": s.hostname, "domain": self.domain_name(s),
                         "nics": [{"network": n.network, "ip": n.ip, "mac": n.mac} for n in s.nics]}
                        for s in self.servers],
            "boot_timeout": self.boot_timeout,
        }

    def write_spec(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump(self.spec(), sort_keys=False))
        return path


def create(hypervisor: Hypervisor, production: FirmwareProduction, image: BuiltImage) -> None:
    """Build every server's disks, define and boot production, then configure each guest."""
    remove(hypervisor, production)
    production.directory.mkdir(parents=True)
    (production.directory / "pool").mkdir()
    paths.make_traversable(production.directory / "pool")
    hypervisor.define_and_start_network(network_xml(production.lan, f"{production.prefix}-lan"[:15], None))
    _run(["ip", "link", "add", production.host_bridge, "type", "bridge"])
    _run(["ip", "link", "set", production.host_bridge, "up"])
    # macvtap's lower link: one end of a veth pair (this kernel has no dummy driver)
    _run(["ip", "link", "add", production.lower_link, "type", "veth", "peer", "name", f"{production.lower_link}p"])
    _run(["ip", "link", "set", production.lower_link, "up"])
    hypervisor.define_and_start_pool(pool_xml(production.pool, production.directory / "pool"))
    with ThreadPoolExecutor(max_workers=len(production.servers)) as pool:
        definitions = list(pool.map(lambda s: _server_xml(hypervisor, production, image, s), production.servers))
    hypervisor.refresh_pool(production.pool)
    domains = [hypervisor.define_domain(xml) for xml in definitions]
    for domain in domains:
        domain.start()
    with ThreadPoolExecutor(max_workers=len(domains)) as pool:
        list(pool.map(lambda pair: _configure(production, *pair), zip(production.servers, domains)))


def remove(hypervisor: Hypervisor, production: FirmwareProduction) -> None:
    for server in production.servers:
        name = production.domain_name(server)
        if hypervisor.has_domain(name):
            domain = hypervisor.domain(name)
            domain.destroy()
            domain.undefine()
    hypervisor.remove_pool(production.pool)
    hypervisor.remove_network(production.lan)
    for link in (production.host_bridge, production.lower_link):
        subprocess.run(["ip", "link", "del", link], capture_output=True)
    for server in production.servers:
        if server.root_kind == "block":
            for device in loop_devices(production.root_file(server)):
                subprocess.run(["losetup", "-d", device], capture_output=True)
    shutil.rmtree(production.directory, ignore_errors=True)


def loop_devices(path: Path) -> list[str]:
    """The loop devices attached to ``path``."""
    out = subprocess.run(["losetup", "-j", str(path), "-O", "NAME", "-n"], capture_output=True, text=True).stdout
    return out.split()


def _server_xml(hypervisor: Hypervisor, production: FirmwareProduction, image: BuiltImage, server: FwServer) -> str:
    raw = production.directory / f"{server.name}-root.raw"
    (firmware.uefi_disk if server.boot.startswith("uefi") else firmware.bios_disk)(image, raw)
    if server.root_kind == "block":
        device = subprocess.run(["losetup", "-f", "--show", str(raw)], capture_output=True, text=True,
                                check=True).stdout.strip()
        disks = [{"kind": "block", "format": "raw", "source": device, "target": "vda"}]
    else:
        root = production.root_file(server)
        _run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(root)])
        raw.unlink()
        root.chmod(0o644)
        disks = [{"kind": "file", "format": "qcow2", "source": str(root), "target": "vda"}]
    if server.data_disk_mib:
        data = production.data_file(server)
        with data.open("wb") as f:
            f.truncate(server.data_disk_mib << 20)
        data.chmod(0o644)
        disks.append({"kind": "volume", "format": "raw", "pool": production.pool, "source": data.name,
                      "target": "vdb"})
    context = {}
    if server.boot == "uefi-explicit":
        nvram = production.nvram_file(server)
        shutil.copyfile(firmware.OVMF_VARS, nvram)
        nvram.chmod(0o644)
        context = {"loader": str(firmware.OVMF_CODE), "nvram": str(nvram)}
    sources = {"network": production.lan, "bridge": production.host_bridge, "direct": production.lower_link}
    return firmware_domain_xml(
        virt_type=production.virt_type, name=production.domain_name(server), memory=server.memory,
        boot=server.boot, disks=disks, log=str(production.log_file(server)),
        nics=[{"kind": n.kind, "mac": n.mac, "source": sources[n.kind]} for n in server.nics], **context)


def _configure(production: FirmwareProduction, server: FwServer, domain: Domain) -> None:
    """Hostname, /etc/hosts and the static addresses (ifupdown's /etc/network/interfaces, or a
    NetworkManager keyfile per NIC), as an administrator writes them."""
    agent = domain.agent(timeout=30)
    agent.wait_ready(production.boot_timeout)
    links = {}
    for line in agent.run(["ip", "-o", "link"]).splitlines():
        fields = line.split()
        if "link/ether" in fields:
            links[fields[fields.index("link/ether") + 1].lower()] = fields[1].rstrip(":").split("@")[0]
    interfaces = "auto lo\niface lo inet loopback\n"
    for nic in server.nics if server.addresses == "ifupdown" else ():
        interfaces += (f"\nauto {links[nic.mac]}\niface {links[nic.mac]} inet static\n"
                       f"    address {nic.ip}/{_prefix(production, nic)}\n")
    hosts = "127.0.0.1 localhost\n" + "".join(
        f"{s.nics[0].ip} {s.hostname} {s.hostname.split('.')[0]}\n" for s in production.servers)
    _write(agent, "/etc/hostname", server.hostname + "\n")
    _write(agent, "/etc/hosts", hosts)
    _write(agent, "/etc/network/interfaces", interfaces)
    agent.run(["hostname", server.hostname])
    agent.run(["ifup", "-a"], timeout=60)
    if server.addresses == "networkmanager":
        for nic in server.nics:
            path = f"/etc/NetworkManager/system-connections/{nic.network}.nmconnection"
            _write(agent, path, nm_keyfile(nic, _prefix(production, nic)))
            agent.run(["chmod", "600", path])      # NetworkManager ignores a keyfile others can read
        agent.run(["nmcli", "connection", "reload"], timeout=60)
        for nic in server.nics:
            agent.run(["nmcli", "connection", "up", nic.network], timeout=60)
    if server.data_disk_mib:
        agent.run(["sh", "-c", MOVE_MARIADB], timeout=180)
    deadline = time.monotonic() + 60
    while not all(nic.ip in agent.run(["ip", "-o", "-4", "addr", "show"]) for nic in server.nics):
        if time.monotonic() > deadline:
            raise LabmgrError(f"production {server.name} did not take its addresses")
        time.sleep(0.5)
    agent.run(["sync"])


def _prefix(production: FirmwareProduction, nic: FwNic) -> int:
    return ipaddress.IPv4Network(production.networks[nic.network]).prefixlen


def nm_keyfile(nic: FwNic, prefix: int) -> str:
    """A NetworkManager connection named after the spec network, bound to the NIC by its MAC."""
    return (f"[connection]\nid={nic.network}\ntype=ethernet\nautoconnect=true\n\n"
            f"[ethernet]\nmac-address={nic.mac}\n\n"
            f"[ipv4]\nmethod=manual\naddress1={nic.ip}/{prefix}\n\n[ipv6]\nmethod=disabled\n")


def _write(agent, path: str, content: str) -> None:
    agent.run(["sh", "-c", f"cat > {shlex.quote(path)}"], stdin=content.encode())


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise LabmgrError(f"{' '.join(command)} failed: {result.stderr.strip()}")
