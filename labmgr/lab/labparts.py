"""What every lab is built from, booted cold or resumed from a template: its own networks, disk
overlays, and names libvirt does not have yet."""

from __future__ import annotations

import time
from pathlib import PurePosixPath

from ..access import dnsdhcp
from ..errors import LabError
from ..hostbase import Host
from ..hypervisor import Hypervisor
from ..progress import Reporter
from ..spec import Environment
from ..xml.builder import LabTag, network_xml
from . import naming, records
from .records import LabNetwork, LabRecord


def clashes(hypervisor: Hypervisor, env: Environment, lab: str) -> list[str]:
    """The names lab ``lab`` would give its domains and networks that libvirt already has."""
    taken = set(hypervisor.domain_names()) | set(hypervisor.network_names())
    wanted = [naming.domain_name(lab, s.name) for s in env.servers]
    wanted += [naming.network_name(lab, n.name) for n in env.networks]
    return sorted(taken.intersection(wanted))


def check_names_free(hypervisor: Hypervisor, env: Environment, name: str | None) -> None:
    if name is None:
        return
    records.check_name(name)
    clash = clashes(hypervisor, env, name)
    if clash:
        raise LabError(f"lab '{name}' cannot be made: libvirt already has '{clash[0]}'",
                       hint=f"choose another --name, or 'labmgr lab down {name}'")


def reserve_lab(hypervisor: Hypervisor, env: Environment, name: str | None, /, **fields: object) -> LabRecord:
    """``records.reserve`` with the clash check: an automatic name skips names libvirt already has."""
    return records.reserve(name, env.name, taken=lambda lab: bool(clashes(hypervisor, env, lab)), **fields)


def make_networks(hypervisor: Hypervisor, env: Environment, record: LabRecord, reporter: Reporter) -> None:
    """The lab's own networks: own bridges, no host address, no forward (written to the record first)."""
    started = time.monotonic()
    with reporter.step("networks", total=len(env.networks)) as step:
        taken = hypervisor.bridges_in_use()
        for network in env.networks:
            lab_network = LabNetwork(name=naming.network_name(record.name, network.name),
                                     bridge=naming.bridge_name(record.name, network.name, taken))
            taken.add(lab_network.bridge)
            record.networks[network.name] = lab_network
            record.save()
            hypervisor.define_and_start_network(network_xml(
                lab_network.name, lab_network.bridge, LabTag(lab=record.name, environment=env.name)))
            step.advance()
    record.timings["network"] = round(time.monotonic() - started, 2)


def make_overlay(host: Host, backing: PurePosixPath, overlay: PurePosixPath) -> None:
    """A qcow2 overlay over ``backing`` on the hypervisor's host, recording the backing format (never probed)."""
    result = host.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                       "-b", str(backing), str(overlay)], check=False)
    if not result.ok:
        raise LabError(f"creating overlay {overlay} failed: {result.stderr.strip()}",
                       hint="is qemu-img installed ('labmgr doctor')?")
    host.chmod(overlay, 0o644)


def serve_dhcp_dns(host: Host, env: Environment, record: LabRecord, reporter: Reporter) -> None:
    """DHCP and DNS from the lab's door, for networks whose spec asks (before any guest runs)."""
    if not dnsdhcp.served_networks(env, record.networks):
        return
    started = time.monotonic()
    with reporter.step("DHCP and DNS (in the door)", total=1) as step:
        dnsdhcp.start(host, record, env)
        step.advance()
    record.timings["dhcp_dns"] = round(time.monotonic() - started, 2)
