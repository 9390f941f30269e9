"""A lab's door: a network namespace on the hypervisor host with one veth end in each of the
lab's bridges and an address in each lab subnet that no server uses.

It has no default route, no other interface and no IPv6, so from it only the lab's
own subnets are reachable, and nothing in the lab can reach past it. ``labmgr ssh``
and ``labmgr forward`` open their connections inside it; it is removed with the lab,
and ``lab gc`` removes doors whose lab is gone.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from .. import paths
from ..errors import LabError
from ..hostbase import Host
from ..spec.model import Environment, Network

PREFIX = "labmgr-door-"


@dataclass(frozen=True)
class Door:
    lab: str
    namespace: str
    addresses: dict[str, str]       # lab network (spec name) -> address/prefix of the door there


def _owner_prefix() -> str:
    """Doors of this state directory: another labmgr sharing the host has its own (paths.owner_id)."""
    return f"{PREFIX}{paths.owner_id()[:8]}-"


def namespace_name(lab: str) -> str:
    return _owner_prefix() + lab


def _veth(lab: str, index: int, end: str) -> str:
    """Interface names (15 characters at most) derived from owner and lab: ``lmd<hash><end><index>``."""
    return f"lmd{hashlib.sha1((paths.owner_id() + lab).encode()).hexdigest()[:8]}{end}{index}"


def door_address(env: Environment, network: Network) -> ipaddress.IPv4Interface:
    """The spec's ``access`` address of ``network``, else the highest one no server and no gateway uses."""
    if network.access is not None:
        return ipaddress.IPv4Interface(f"{network.access}/{network.cidr.prefixlen}")
    used = {nic.ip for server in env.servers for nic in server.nics if nic.network == network.name}
    used.update({network.gateway, network.dns})       # the resolver's address is the door's as well, on its own
    for candidate in reversed(list(network.cidr.hosts()) if network.cidr.num_addresses <= 65536 else []):
        if candidate not in used:
            return ipaddress.IPv4Interface(f"{candidate}/{network.cidr.prefixlen}")
    raise LabError(f"network {network.name} ({network.cidr}) has no free address for the lab door",
                   hint=f"set networks[{network.name}].access in the spec")


def open_door(host: Host, record, env: Environment) -> Door:
    """The lab's door, made if it is not there (idempotent; a half-made one is remade)."""
    door = Door(record.name, namespace_name(record.name),
                {n.name: str(door_address(env, n)) for n in env.networks if n.name in record.networks})
    if _complete(host, door):
        return door
    close_door(host, record.name)
    host.run(["ip", "netns", "add", door.namespace])
    try:
        ns = ["ip", "-n", door.namespace]
        host.run([*ns, "link", "set", "lo", "up"])
        host.run(["ip", "netns", "exec", door.namespace, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                  "net.ipv6.conf.default.disable_ipv6=1"])
        for index, (network, address) in enumerate(sorted(door.addresses.items())):
            outer, inner = _veth(record.name, index, "h"), _veth(record.name, index, "n")
            host.run(["ip", "link", "add", outer, "type", "veth", "peer", "name", inner])
            host.run(["ip", "link", "set", inner, "netns", door.namespace])
            # the host end is a bridge port only: no address, not even an IPv6 link-local one
            host.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{outer}.disable_ipv6=1"])
            host.run(["ip", "link", "set", outer, "master", record.networks[network].bridge, "up"])
            host.run([*ns, "addr", "add", address, "dev", inner])
            host.run([*ns, "link", "set", inner, "up"])
    except Exception:
        close_door(host, record.name)
        raise
    return door


def _complete(host: Host, door: Door) -> bool:
    if door.namespace not in namespaces(host):
        return False
    shown = host.run(["ip", "-n", door.namespace, "-o", "-4", "addr", "show"], check=False).stdout
    return all(f" {address} " in shown for address in door.addresses.values())


def close_door(host: Host, lab: str) -> bool:
    """Remove the lab's door (its veth pairs go with the namespace). True if there was one."""
    name = namespace_name(lab)
    existed = name in namespaces(host)
    if existed:
        end_processes(host, name)       # a namespace outlives its name while a process is in it
        host.run(["ip", "netns", "del", name])
    stem = _veth(lab, 0, "h")[:-1]       # host ends left by a door made halfway
    for line in host.run(["ip", "-o", "link", "show"], check=False).stdout.splitlines():
        parts = line.split(":")
        link = parts[1].strip().split("@")[0] if len(parts) > 1 else ""
        if link.startswith(stem):
            host.run(["ip", "link", "del", link], check=False)
    return existed


def legs(door: Door) -> dict[str, str]:
    """Lab network (spec name) -> the door's interface in it."""
    return {network: _veth(door.lab, index, "n") for index, network in enumerate(sorted(door.addresses))}


def end_processes(host: Host, namespace: str, grace: float = 5) -> None:
    """Every process inside the namespace (the lab's dnsmasq, an ssh client): SIGTERM, then SIGKILL."""
    for signal in ("TERM", "KILL"):
        pids = host.run(["ip", "netns", "pids", namespace], check=False).stdout.split()
        if not pids:
            return
        host.run(["kill", f"-{signal}", *pids], check=False)
        host.run(["sh", "-c", 'for i in $(seq $(( $1 * 10 ))); do [ -z "$(ip netns pids "$0")" ] && exit 0; '
                  'sleep 0.1; done', namespace, str(int(grace))], check=False)


def namespaces(host: Host) -> list[str]:
    listing = host.run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


def doors(host: Host) -> list[str]:
    """Labs of this state directory that have a door on ``host``."""
    prefix = _owner_prefix()
    return [name[len(prefix):] for name in namespaces(host) if name.startswith(prefix)]
