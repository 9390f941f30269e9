"""Load an environment spec and check the rules that span the file."""

from __future__ import annotations

from pathlib import Path

from .. import yamlfile
from .model import Environment


def load_environment(path: Path | str) -> Environment:
    env, source = yamlfile.load(Path(path), Environment)
    check_environment(env, source)
    return env


def check_environment(env: Environment, source: yamlfile.Source) -> None:
    _unique(source, [("networks", i, "name") for i in range(len(env.networks))],
            [n.name for n in env.networks], "network name")
    _unique(source, [("servers", i, "name") for i in range(len(env.servers))],
            [s.name for s in env.servers], "server name")
    _unique(source, [("servers", i, "domain") for i in range(len(env.servers))],
            [s.domain for s in env.servers], "production domain")

    _check_hypervisors(env, source)
    networks = {n.name: n for n in env.networks}
    for i, network in enumerate(env.networks):
        if network.gateway is not None and network.gateway not in network.cidr:
            raise source.error(("networks", i, "gateway"),
                               f"gateway {network.gateway} is outside {network.cidr}")
        if network.access is not None and (network.access not in network.cidr or network.access in (
                network.cidr.network_address, network.cidr.broadcast_address)):
            raise source.error(("networks", i, "access"), f"{network.access} is not a host address of {network.cidr}")
        if network.access is not None and network.access == network.gateway:
            raise source.error(("networks", i, "access"), f"{network.access} is the gateway of {network.name}: "
                               "a door there would answer for production's gateway")
        _check_dns(network, source, ("networks", i, "dns"))

    seen_ip: dict[tuple[str, object], str] = {}
    seen_mac: dict[tuple[str, str], str] = {}
    for i, server in enumerate(env.servers):
        for j, nic in enumerate(server.nics):
            loc = ("servers", i, "nics", j)
            network = networks.get(nic.network)
            if network is None:
                raise source.error((*loc, "network"), f"network '{nic.network}' is not declared "
                                   f"(declared: {', '.join(networks)})")
            if nic.ip not in network.cidr:
                raise source.error((*loc, "ip"), f"{nic.ip} is outside {network.name} ({network.cidr})")
            if nic.ip in (network.cidr.network_address, network.cidr.broadcast_address):
                raise source.error((*loc, "ip"), f"{nic.ip} is not a host address of {network.cidr}")
            if nic.ip == network.gateway:
                raise source.error((*loc, "ip"), f"{nic.ip} is the gateway of {network.name}")
            if nic.ip == network.dns:
                raise source.error((*loc, "ip"), f"{nic.ip} is the resolver address (dns) of {network.name}: a "
                                   "server that is production's DNS is in the lab already; drop 'dns'")
            if nic.ip == network.access:
                raise source.error((*loc, "ip"), f"{nic.ip} is the lab door's address (access) of {network.name}")
            for key, value, seen in (("ip", nic.ip, seen_ip), ("mac", nic.mac, seen_mac)):
                owner = seen.get((nic.network, value))
                if owner is not None:
                    raise source.error((*loc, key), f"duplicate {key.upper()} {value} on network "
                                       f"{nic.network} (also used by server {owner})")
                seen[(nic.network, value)] = server.name

    for i, server in enumerate(env.servers):
        _unique(source, [("servers", i, "dumps", j, "name") for j in range(len(server.dumps))],
                [d.name for d in server.dumps], f"dump name of server {server.name}")

    names = {s.name for s in env.servers}
    for k, name in enumerate(env.boot_order or []):
        if name not in names:
            raise source.error(("boot_order", k), f"unknown server '{name}' (servers: {', '.join(sorted(names))})")
    _unique(source, [("boot_order", k) for k in range(len(env.boot_order or []))],
            list(env.boot_order or []), "boot_order entry")


def _check_dns(network, source: yamlfile.Source, loc: tuple) -> None:
    """The lab door takes the resolver's address on its leg: it must be a free host address of the network."""
    if network.dns is None:
        return
    if network.dns not in network.cidr or network.dns in (network.cidr.network_address,
                                                          network.cidr.broadcast_address):
        raise source.error(loc, f"{network.dns} is not a host address of {network.cidr}: the lab answers DNS "
                           "only at an address in the network")
    if network.dns == network.gateway:
        raise source.error(loc, f"{network.dns} is the gateway of {network.name}: the lab door never answers "
                           "at production's gateway")


def _check_hypervisors(env: Environment, source: yamlfile.Source) -> None:
    """Remote URIs must be ones labmgr can log in to over SSH; each host listed once; somewhere for labs."""
    from ..errors import LabmgrError
    from ..remote.uri import is_remote, parse_target

    def loc(i: int) -> tuple:
        if ("hypervisor", i) not in source.lines:
            return ("hypervisor",)              # the one-URI form
        return ("hypervisor", i, "uri") if ("hypervisor", i, "uri") in source.lines else ("hypervisor", i)

    seen: set[str] = set()
    for i, site in enumerate(env.hypervisors):
        if site.uri in seen:
            raise source.error(loc(i), f"duplicate hypervisor '{site.uri}'")
        seen.add(site.uri)
        if is_remote(site.uri):
            try:
                parse_target(site.uri)
            except LabmgrError as exc:
                raise source.error(loc(i), str(exc).removeprefix(f"hypervisor {site.uri}: ")) from None
    if not any(site.labs for site in env.hypervisors):
        raise source.error(("hypervisor",), "every hypervisor says labs: false; labs need one to go to")


def _unique(source: yamlfile.Source, locs: list, values: list, what: str) -> None:
    seen: set = set()
    for loc, value in zip(locs, values):
        if value in seen:
            raise source.error(loc, f"duplicate {what} '{value}'")
        seen.add(value)
