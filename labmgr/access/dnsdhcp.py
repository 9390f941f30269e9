"""DHCP and DNS inside a lab, served from its door (docs/access.md).

Production's servers may take their address from a DHCP reservation and find each
other through a resolver that is not one of the environment's servers. A lab
network with ``dhcp: true`` or ``dns: <address>`` gets both from a dnsmasq run
inside the lab's door, on the hypervisor's host (through the host layer):

- DHCP: reservations only, each server's production IP by its MAC; no pool, so an
  unknown MAC gets nothing. Leases are infinite, so a guest resumed or reverted
  to an earlier point never needs to ask again.
- DNS: the door also takes the resolver's address on its leg; the environment's
  hostnames are answered with their lab addresses, everything else gets NXDOMAIN
  (no upstream server: a query never leaves the lab).

Its configuration (with the environment's names), pid, leases and log live in the lab's directory on
the hypervisor's host (``dnsdhcp/``), so they go with the lab. The process is in
the door's namespace: closing the door ends it (``door.end_processes``), which is
how ``lab down`` and ``lab gc`` (a ``lab up`` killed, an orphaned door) remove it.
"""

from __future__ import annotations

import io
import ipaddress
import time
from pathlib import PurePosixPath

from ..errors import LabError
from ..hostbase import Host
from ..spec.model import Environment, Network
from .door import Door, legs, namespace_name, open_door

FOLDER = "dnsdhcp"
CONF, PID, LEASES, LOG = "dnsmasq.conf", "dnsmasq.pid", "dnsmasq.leases", "dnsmasq.log"


def served_networks(env: Environment, lab_networks) -> list[Network]:
    """The lab's networks that get DHCP or DNS from the door."""
    return [n for n in env.networks if (n.dhcp or n.dns is not None) and n.name in lab_networks]


def folder_of(record) -> PurePosixPath:
    return record.host_directory / FOLDER


def host_records(env: Environment) -> list[str]:
    """Every server's hostname (and its short name) at each of its addresses: the names the lab answers.
    In the configuration, which dnsmasq reads before it drops root (a hosts file is read after)."""
    lines = []
    for server in env.servers:
        names = [server.hostname] + ([server.hostname.split(".")[0]] if "." in server.hostname else [])
        lines += [f"host-record={','.join(names)},{nic.ip}" for nic in server.nics]
    return lines


def dnsmasq_conf(env: Environment, door: Door, folder: PurePosixPath) -> str:
    """dnsmasq's whole configuration: only the door's legs, only the spec's names and reservations."""
    networks = served_networks(env, door.addresses)
    interfaces = legs(door)
    lines = ["# written by labmgr: DHCP and DNS inside the lab only (labmgr/access/dnsdhcp.py)",
             "no-resolv", "no-hosts", "no-poll", "bind-interfaces", "except-interface=lo",
             "local=/#/",                  # every name is local: unknown ones get NXDOMAIN, none is forwarded
             "localise-queries", f"pid-file={folder / PID}",
             f"log-facility={folder / LOG}", "log-queries", "log-dhcp"]
    if not any(n.dns is not None for n in networks):
        lines.append("port=0")             # DHCP only: no DNS at all
    else:
        lines += host_records(env)
    lines += [f"interface={interfaces[n.name]}" for n in networks]
    if any(n.dhcp for n in networks):
        lines += ["dhcp-authoritative", "dhcp-ignore=tag:!known", f"dhcp-leasefile={folder / LEASES}"]
    for network in (n for n in networks if n.dhcp):
        tag = f"net-{network.name}"
        lines.append(f"dhcp-range=set:{tag},{network.cidr.network_address},static,{network.cidr.netmask},infinite")
        # an empty option is not sent: without a gateway or resolver, the door offers none of its own
        lines.append(f"dhcp-option=tag:{tag},option:router" + (f",{network.gateway}" if network.gateway else ""))
        lines.append(f"dhcp-option=tag:{tag},option:dns-server" + (f",{network.dns}" if network.dns else ""))
        for server in env.servers:
            lines += [f"dhcp-host={nic.mac},{nic.ip},infinite" for nic in server.nics if nic.network == network.name]
    return "\n".join(lines) + "\n"


def start(host: Host, record, env: Environment) -> bool:
    """Open the door and start the lab's dnsmasq in it (again, if it was running). False when no
    network of the lab asks for DHCP or DNS."""
    networks = served_networks(env, record.networks)
    if not networks:
        return False
    door = open_door(host, record, env)
    stop(host, record)
    folder = folder_of(record)
    host.mkdir(folder)
    host.write_from(io.BytesIO(dnsmasq_conf(env, door, folder).encode()), folder / CONF)
    interfaces = legs(door)
    for network in (n for n in networks if n.dns is not None):
        address = f"{network.dns}/{network.cidr.prefixlen}"
        if str(ipaddress.IPv4Interface(door.addresses[network.name]).ip) != str(network.dns):
            host.run(["ip", "-n", door.namespace, "addr", "replace", address, "dev", interfaces[network.name]])
    result = host.run(["ip", "netns", "exec", door.namespace, "dnsmasq", f"--conf-file={folder / CONF}"],
                      check=False)
    if not result.ok:
        raise LabError(f"lab {record.name}: dnsmasq (DHCP and DNS in the lab) did not start: "
                       f"{(result.stderr.strip() or result.stdout.strip())[:300]}",
                       hint="is dnsmasq installed on the hypervisor's host ('labmgr doctor')?")
    return True


def running_pid(host: Host, record) -> int | None:
    """The lab's dnsmasq, if it runs (its pid file names a process that is still there)."""
    pid_file = folder_of(record) / PID
    if not host.exists(pid_file):
        return None
    text = host.run(["cat", str(pid_file)], check=False).stdout.strip()
    if not text.isdigit():
        return None
    # a pid is reused: the process must also be inside the lab's door
    inside = host.run(["ip", "netns", "identify", text], check=False).stdout.strip()
    return int(text) if inside == namespace_name(record.name) else None


def stop(host: Host, record, grace: float = 5) -> bool:
    """End the lab's dnsmasq (its files stay with the lab's directory). True if one was running."""
    pid = running_pid(host, record)
    if pid is None:
        return False
    host.run(["kill", "-TERM", str(pid)], check=False)
    deadline = time.monotonic() + grace
    while running_pid(host, record) == pid and time.monotonic() < deadline:
        time.sleep(0.1)
    if running_pid(host, record) == pid:
        host.run(["kill", "-KILL", str(pid)], check=False)
    return True


def leases(host: Host, record) -> dict[str, str]:
    """MAC -> address of every lease the lab's dnsmasq handed out."""
    path = folder_of(record) / LEASES
    if not host.exists(path):
        return {}
    found = {}
    for line in host.run(["cat", str(path)], check=False).stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            found[fields[1].lower()] = fields[2]
    return found
