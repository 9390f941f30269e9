"""Build a small but real "production" on this machine's libvirt.

Production here is what a user would have: libvirt domains with their own
disks, on an isolated network, each guest configured with its hostname and
static addresses (written into its disk through the guest agent, as an
administrator would have configured it). The demo and the test suite point
labmgr at it exactly as at a real environment, through an environment spec.
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
from ..xml.builder import guest_domain_xml, network_xml


OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"       # Debian's ovmf package
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"


@dataclass(frozen=True)
class ProdServer:
    name: str
    hostname: str
    ip: str
    mac: str
    memory: int = 512
    data_disk_mib: int = 0        # an extra disk, never mounted, for "production untouched" checks
    uefi: bool = False            # boot through OVMF (pflash firmware and its own NVRAM)
    screen: bool = False          # a VGA screen behind VNC on loopback (console screenshots)


@dataclass
class Production:
    prefix: str                   # every libvirt object and file is named with it
    network: str                  # CIDR of production's LAN
    gateway: str
    servers: list[ProdServer]
    uri: str = "qemu:///system"
    virt_type: str = "qemu"
    boot_timeout: float = 300
    directory: Path = field(init=False)

    def __post_init__(self) -> None:
        self.directory = paths.subdir("production") / self.prefix

    @property
    def network_name(self) -> str:
        return f"{self.prefix}-lan"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-br"[:15]

    def domain_name(self, server: ProdServer) -> str:
        return f"{self.prefix}-{server.name}"

    def disk_paths(self, server: ProdServer) -> list[Path]:
        disks = [self.directory / f"{server.name}-vda.qcow2"]
        if server.data_disk_mib:
            disks.append(self.directory / f"{server.name}-vdb.qcow2")
        return disks

    def spec(self) -> dict:
        return {
            "name": self.prefix,
            "hypervisor": self.uri,
            "networks": [{"name": "lan", "cidr": self.network, "gateway": self.gateway}],
            "servers": [{"name": s.name, "hostname": s.hostname, "domain": self.domain_name(s),
                         "nics": [{"network": "lan", "ip": s.ip, "mac": s.mac}]} for s in self.servers],
            "boot_timeout": self.boot_timeout,
        }

    def write_spec(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump(self.spec(), sort_keys=False))
        return path


def create(hypervisor: Hypervisor, production: Production, image: BuiltImage) -> None:
    """Define and boot production, then configure every guest (hostname, addresses)."""
    remove(hypervisor, production)
    production.directory.mkdir(parents=True)
    paths.make_traversable(production.directory)
    hypervisor.define_and_start_network(network_xml(production.network_name, production.bridge, None))
    domains = []
    for server in production.servers:
        disks = production.disk_paths(server)
        _run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image.disk), str(disks[0])])
        if server.data_disk_mib:
            _make_data_disk(disks[1], server.data_disk_mib)
        for disk in disks:
            disk.chmod(0o644)
        firmware = {}
        if server.uefi:
            nvram = production.directory / f"{server.name}-VARS.fd"
            shutil.copyfile(OVMF_VARS, nvram)
            nvram.chmod(0o644)
            firmware = {"loader": OVMF_CODE, "nvram": nvram, "machine": "q35"}
        domains.append(hypervisor.define_domain(guest_domain_xml(
            **firmware,
            virt_type=production.virt_type, name=production.domain_name(server), memory=server.memory,
            vcpus=1, screen=server.screen, kernel=image.kernel, initrd=image.initrd,
            disks=[{"path": p, "target": f"vd{chr(ord('a') + i)}"} for i, p in enumerate(disks)],
            nics=[{"mac": server.mac, "network": production.network_name}])))
    for domain in domains:
        domain.start()
    with ThreadPoolExecutor(max_workers=len(domains)) as pool:
        list(pool.map(lambda pair: _configure(production, *pair), zip(production.servers, domains)))


def remove(hypervisor: Hypervisor, production: Production) -> None:
    for server in production.servers:
        name = production.domain_name(server)
        if hypervisor.has_domain(name):
            domain = hypervisor.domain(name)
            domain.destroy()
            domain.undefine()
    hypervisor.remove_network(production.network_name)
    shutil.rmtree(production.directory, ignore_errors=True)


def _configure(production: Production, server: ProdServer, domain: Domain) -> None:
    agent = domain.agent(timeout=30)
    agent.wait_ready(production.boot_timeout)
    prefix = ipaddress.IPv4Network(production.network).prefixlen
    hosts = "127.0.0.1 localhost\n" + "".join(
        f"{s.ip} {s.hostname} {s.hostname.split('.')[0]}\n" for s in production.servers)
    network = (f"[Match]\nMACAddress={server.mac}\n\n[Network]\nAddress={server.ip}/{prefix}\n"
               f"Gateway={production.gateway}\nLinkLocalAddressing=no\n")
    _write(agent, "/etc/hostname", server.hostname + "\n")
    _write(agent, "/etc/hosts", hosts)
    _write(agent, "/etc/systemd/network/05-labmgr-lan.network", network)
    agent.run(["hostname", server.hostname])
    agent.run(["systemctl", "restart", "systemd-networkd"], timeout=60)
    deadline = time.monotonic() + 60
    while server.ip not in agent.run(["ip", "-o", "-4", "addr", "show"]):
        if time.monotonic() > deadline:
            raise LabmgrError(f"production {server.name} did not take address {server.ip}")
        time.sleep(0.5)
    agent.run(["sync"])


def _write(agent, path: str, content: str) -> None:
    agent.run(["sh", "-c", f"cat > {shlex.quote(path)}"], stdin=content.encode())


def _make_data_disk(path: Path, mib: int) -> None:
    """A qcow2 disk full of known, non-zero bytes (so a copy of it is a real copy)."""
    raw = path.with_suffix(".raw")
    with raw.open("wb") as out:
        for block in range(mib):
            out.write(block.to_bytes(4, "big") * (2**20 // 4))
    _run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)])
    raw.unlink()


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise LabmgrError(f"{' '.join(command)} failed: {result.stderr.strip()}")
