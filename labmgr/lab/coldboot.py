"""A lab booted cold, as production would be: clones of the snapshot's disks, boot, wait for
every guest agent and service, then each VM's clean point.

``lab up --cold`` and a warm template's first boot (``for_template``: no clean points, no
history: its running states become the template) come here; ``up.py`` decides. The record is
written first and updated after every object is made, so whatever happens (an error, Ctrl-C,
SIGKILL) the lab can be removed completely by ``lab down`` or ``lab gc``; on an error or
interrupt the half-made lab is removed before the error is reported.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from ..errors import LabError, LabmgrError
from ..hostbase import Host
from ..hypervisor import Hypervisor
from ..history import history_for
from ..progress import Reporter
from ..snapshot import Snapshot
from ..spec import Environment, Server
from ..storage import lab_dir, site_for, storage_root
from . import naming
from .clone import CloneInputs, derive_lab_domain
from .guestchannel import channel_for, learn_missing_keys, login_for, prepare_logins, wait_ready
from .labparts import make_networks, make_overlay, reserve_lab, serve_dhcp_dns
from .pointintime import CLEAN, choose_kind, points_of
from .records import LabRecord, LabServer
from .teardown import remove_lab


def cold_up(hypervisor: Hypervisor, host: Host, env: Environment, spec_path: Path, snapshot: Snapshot,
            name: str | None, virt_type: str, reporter: Reporter, *, for_template: bool = False,
            drill_lock: str = "") -> LabRecord:
    record = reserve_lab(hypervisor, env, name, hypervisor=hypervisor.uri, snapshot=snapshot.id,
                         drill_lock=drill_lock, spec=str(Path(spec_path).absolute()), virt_type=virt_type)
    try:
        record.storage = str(lab_dir(storage_root(site_for(env, hypervisor.uri)), record.name))
        record.save()
        _build(hypervisor, host, env, snapshot, record, reporter, for_template)
    except BaseException as exc:
        record.state = "failed"
        record.error = str(exc)
        record.save()
        remove_lab(hypervisor, record.name)
        record.release()
        if isinstance(exc, LabmgrError) and not isinstance(exc, LabError):
            raise LabError(f"lab {record.name} could not be brought up and was removed: {exc}") from None
        raise
    if not for_template:        # a template's maker holds its lab until the states are saved (gc: not abandoned)
        record.release()
    return record


def _build(hypervisor: Hypervisor, host: Host, env: Environment, snapshot: Snapshot, record: LabRecord,
           reporter: Reporter, for_template: bool) -> None:
    make_networks(hypervisor, env, record, reporter)
    serve_dhcp_dns(host, env, record, reporter)
    prepare_logins(host, record, env, snapshot)

    started = time.monotonic()
    with reporter.step("clones", total=len(env.servers)) as step:
        for server in env.servers:
            _clone_server(hypervisor, host, env, snapshot, record, server)
            step.advance()
    record.timings["clone"] = round(time.monotonic() - started, 2)

    started = time.monotonic()
    _boot(hypervisor, env, record, reporter)
    record.timings["boot"] = round(time.monotonic() - started, 2)

    started = time.monotonic()
    with reporter.step("services ready", total=len(env.servers)) as step:
        for server in env.servers:
            domain = hypervisor.domain(record.servers[server.name].domain)
            _wait_until_booted(channel_for(domain, record, server.name), server, env.boot_timeout, reporter)
            step.advance()
    record.timings["ready"] = round(time.monotonic() - started, 2)
    learn_missing_keys(hypervisor, record, env, snapshot)
    if for_template:
        return
    started = time.monotonic()
    with reporter.step("clean points", total=len(env.servers)) as step:
        with ThreadPoolExecutor(max_workers=len(env.servers)) as pool:
            keepers = [points_of(hypervisor, host, record, s.name) for s in env.servers]
            for _ in pool.map(lambda keeper: keeper.take(CLEAN), keepers):
                step.advance()
    record.timings["clean_snapshot"] = round(time.monotonic() - started, 2)
    record.state = "up"
    record.save()
    with history_for(env) as history:
        history.record_lab(record.name, env.name, snapshot.id, record.created_at, record.timings)


def _clone_server(hypervisor: Hypervisor, host: Host, env: Environment, snapshot: Snapshot, record: LabRecord,
                  server: Server) -> None:
    """Overlays (and an own NVRAM) in the lab's directory on the hypervisor's host, then the domain."""
    copy = snapshot.servers[server.name]
    folder = record.host_directory / server.name
    host.mkdir(folder)
    host.make_traversable(folder)
    lab_server = LabServer(domain=naming.domain_name(record.name, server.name), hostname=server.hostname)
    lab_server.points = choose_kind(snapshot.file(copy.xml).read_text())
    lab_server.login = login_for(server)
    record.servers[server.name] = lab_server
    record.save()
    for disk in copy.disks:
        overlay = folder / f"{disk.target}.qcow2"
        make_overlay(host, snapshot.host_file(disk.image, record.hypervisor), overlay)
        lab_server.overlays[disk.target] = str(overlay)
    os_files: dict[str, PurePosixPath] = {}
    for tag, relative in copy.os_files.items():
        if tag == "nvram":   # the guest writes its NVRAM: the lab gets its own copy
            target = folder / "nvram"
            host.copy(snapshot.host_file(relative, record.hypervisor), target)
            host.chmod(target, 0o644)
            os_files[tag] = target
            lab_server.nvram = str(target)
        else:
            os_files[tag] = snapshot.host_file(relative, record.hypervisor)
    xml = derive_lab_domain(snapshot.file(copy.xml).read_text(), CloneInputs(
        lab=record.name, environment=env.name, snapshot=snapshot.id, server=server,
        domain_name=lab_server.domain, virt_type=record.virt_type,
        overlays={t: PurePosixPath(p) for t, p in lab_server.overlays.items()}, os_files=os_files,
        networks={n: ln.name for n, ln in record.networks.items()}, directory=folder))
    hypervisor.define_domain(xml)
    record.save()


def boot_groups(env: Environment) -> list[list[Server]]:
    """Servers named in boot_order start one at a time, in order; the rest together after them."""
    ordered = [env.server(name) for name in env.boot_order or []]
    rest = [s for s in env.servers if s not in ordered]
    return [[s] for s in ordered] + ([rest] if rest else [])


def _boot(hypervisor: Hypervisor, env: Environment, record: LabRecord, reporter: Reporter) -> None:
    with reporter.step("boot (waiting for guest agents or SSH)", total=len(env.servers)) as step:
        for group in boot_groups(env):
            domains = {s.name: hypervisor.domain(record.servers[s.name].domain) for s in group}
            for domain in domains.values():
                domain.start()
            pool = ThreadPoolExecutor(max_workers=len(domains))
            try:
                waits = [pool.submit(wait_ready, channel_for(d, record, name), d, env.boot_timeout)
                         for name, d in domains.items()]
                for wait in waits:
                    wait.result()
                    step.advance()
            finally:
                # on failure do not wait for the other guests: the lab is about to be removed
                pool.shutdown(wait=False, cancel_futures=True)
    with reporter.step("network addresses", total=len(env.servers)) as step:
        for server in env.servers:
            _wait_for_addresses(hypervisor, record, server, env, reporter)
            step.advance()


def _wait_until_booted(channel, server: Server, timeout: float, reporter: Reporter) -> None:
    """Wait for the guest's services to finish starting (a database recovering after the
    crash-consistent copy, say), so the clean snapshot is of a ready system."""
    result = channel.exec(["systemctl", "is-system-running", "--wait"], timeout=timeout)
    state = result.stdout.strip() or result.stderr.strip()
    if state not in ("running", "degraded"):
        reporter.note(f"server {server.name}: boot ended in state '{state or 'unknown'}'")


def _wait_for_addresses(hypervisor: Hypervisor, record: LabRecord, server: Server, env: Environment,
                        reporter: Reporter, timeout: float = 60) -> None:
    """Wait until the guest reports production's IPs on production's MACs.

    The agent answers before the guest has configured its network. An address on a
    network the lab serves DHCP on must come (the clean point is of a guest that has
    it); any other address a guest never takes (production used a DHCP server the
    spec does not declare, say) is reported, not failed: the guest is still
    reachable through the agent.
    """
    agent = channel_for(hypervisor.domain(record.servers[server.name].domain), record, server.name)
    wanted = {(nic.mac, str(nic.ip)) for nic in server.nics}
    leased = {(nic.mac, str(nic.ip)) for nic in server.nics if env.network(nic.network).dhcp}
    deadline = time.monotonic() + timeout
    while True:
        have = {(nic["mac"], ip) for nic in agent.interfaces() for ip in nic["ipv4"]}
        if wanted <= have:
            return
        if time.monotonic() > deadline:
            missing = ", ".join(f"{ip} on {mac}" for mac, ip in sorted(wanted - have))
            if leased - have:
                raise LabError(f"server {server.name} did not take {missing} from the lab's DHCP within "
                               f"{timeout:.0f} s of booting", hint="is its production network configured for "
                               "DHCP on that MAC? the lab's dnsmasq log is in its directory (dnsdhcp/dnsmasq.log)")
            reporter.note(f"server {server.name}: the guest has not configured {missing} "
                          f"within {timeout:.0f} s of booting")
            return
        time.sleep(1)
