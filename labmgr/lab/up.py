"""Bring a lab up: networks, overlays, domains, boot, wait for every guest agent.

Order matters for clean failure: the record is written first and updated after
every object is made, so whatever happens (an error, Ctrl-C, SIGKILL) the lab
can be removed completely by ``lab down`` or ``lab gc``. On an error or
interrupt the half-made lab is removed before the error is reported.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from ..errors import LabError, LabmgrError
from ..hosts import host_for
from ..hypervisor import Hypervisor, connect
from ..hypervisor.accel import choose_virt_type, requested_accel
from ..history import history_for
from ..progress import SILENT, Reporter
from ..snapshot import Snapshot, find_snapshot
from ..snapshot.replicate import ensure_copy
from ..spec import Environment, Server
from ..storage import lab_dir, storage_root
from ..xml.builder import LabTag, network_xml
from . import naming, records
from .clone import CloneInputs, derive_lab_domain
from .placement import place
from .records import LabNetwork, LabRecord, LabServer
from .pointintime import CLEAN, choose_kind, points_of
from .hypervisors import remember_hypervisor
from .teardown import remove_lab


def lab_up(env: Environment, spec_path: Path, *, name: str | None = None, snapshot_id: str | None = None,
           reporter: Reporter = SILENT, cold: bool = False, for_template: bool = False) -> LabRecord:
    """A lab of the snapshot: resumed from its warm template (made by a cold boot the first time),
    or with ``cold`` booted as production would be. ``for_template``: the cold lab a template is
    made from (no clean points, no history: it becomes the template)."""
    requested_accel(env.accel)          # a bad LABMGR_ACCEL is refused before anything else
    snapshot = find_snapshot(env.name, snapshot_id)
    _check_snapshot(env, snapshot)
    site = place(env, snapshot, reporter)
    with connect(site.uri) as hypervisor, host_for(site.uri) as host:
        if site.uri in snapshot.locations():
            _check_images(snapshot, host, site.uri)
        virt_type = choose_virt_type(env.accel, hypervisor)
        _check_names_free(hypervisor, env, name)
        snapshot = ensure_copy(snapshot, site.uri, host, storage_root(site), reporter)
        remember_hypervisor(site.uri)
        if not cold and not for_template:
            from .instant import instant_up

            return instant_up(hypervisor, host, env, spec_path, snapshot, name, virt_type, reporter)
        record = records.reserve(name, env.name, hypervisor=site.uri, snapshot=snapshot.id,
                                 spec=str(Path(spec_path).absolute()), virt_type=virt_type)
        try:
            record.storage = str(lab_dir(storage_root(site), record.name))
            record.save()
            _build(hypervisor, host, env, snapshot, record, reporter, for_template)
        except BaseException as exc:
            record.state = "failed"
            record.error = str(exc)
            record.save()
            remove_lab(hypervisor, record.name)
            if isinstance(exc, LabmgrError) and not isinstance(exc, LabError):
                raise LabError(f"lab {record.name} could not be brought up and was removed: {exc}") from None
            raise
        return record


def _check_snapshot(env: Environment, snapshot: Snapshot) -> None:
    for server in env.servers:
        if server.name not in snapshot.servers:
            raise LabError(f"snapshot {snapshot.id} has no copy of server {server.name}",
                           hint="capture a new snapshot after changing the spec")
    _refuse_missing(snapshot, [str(p) for p in snapshot.missing_files()], "")


def _check_images(snapshot: Snapshot, host, uri: str) -> None:
    _refuse_missing(snapshot, snapshot.missing_on(host, uri), f" on {host.name}" if host.remote else "")


def _refuse_missing(snapshot: Snapshot, missing: list[str], where: str) -> None:
    if missing:
        raise LabError(f"snapshot {snapshot.id} is missing {missing[0]}{where}"
                       + (f" and {len(missing) - 1} more files" if len(missing) > 1 else ""),
                       hint="capture a new snapshot with 'labmgr snapshot capture'")


def _check_names_free(hypervisor: Hypervisor, env: Environment, name: str | None) -> None:
    if name is None:
        return
    records.check_name(name)
    taken = set(hypervisor.domain_names()) | set(hypervisor.network_names())
    wanted = [naming.domain_name(name, s.name) for s in env.servers]
    wanted += [naming.network_name(name, n.name) for n in env.networks]
    clash = sorted(taken.intersection(wanted))
    if clash:
        raise LabError(f"lab '{name}' cannot be made: libvirt already has '{clash[0]}'",
                       hint=f"choose another --name, or 'labmgr lab down {name}'")


def _build(hypervisor: Hypervisor, host, env: Environment, snapshot: Snapshot, record: LabRecord,
           reporter: Reporter, for_template: bool) -> None:
    make_networks(hypervisor, env, record, reporter)

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
            _wait_until_booted(hypervisor.domain(record.servers[server.name].domain), server,
                               env.boot_timeout, reporter)
            step.advance()
    record.timings["ready"] = round(time.monotonic() - started, 2)
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


def _clone_server(hypervisor: Hypervisor, host, env: Environment, snapshot: Snapshot, record: LabRecord,
                  server: Server) -> None:
    """Overlays (and an own NVRAM) in the lab's directory on the hypervisor's host, then the domain."""
    copy = snapshot.servers[server.name]
    folder = record.host_directory / server.name
    host.mkdir(folder)
    host.make_traversable(folder)
    lab_server = LabServer(domain=naming.domain_name(record.name, server.name), hostname=server.hostname)
    lab_server.points = choose_kind(snapshot.file(copy.xml).read_text())
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


def make_overlay(host, backing: PurePosixPath, overlay: PurePosixPath) -> None:
    """A qcow2 overlay over ``backing`` on the hypervisor's host, recording the backing format (never probed)."""
    result = host.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                       "-b", str(backing), str(overlay)], check=False)
    if not result.ok:
        raise LabError(f"creating overlay {overlay} failed: {result.stderr.strip()}",
                       hint="is qemu-img installed ('labmgr doctor')?")
    host.chmod(overlay, 0o644)


def boot_groups(env: Environment) -> list[list[Server]]:
    """Servers named in boot_order start one at a time, in order; the rest together after them."""
    ordered = [env.server(name) for name in env.boot_order or []]
    rest = [s for s in env.servers if s not in ordered]
    return [[s] for s in ordered] + ([rest] if rest else [])


def _boot(hypervisor: Hypervisor, env: Environment, record: LabRecord, reporter: Reporter) -> None:
    with reporter.step("boot (waiting for guest agents)", total=len(env.servers)) as step:
        for group in boot_groups(env):
            domains = [hypervisor.domain(record.servers[s.name].domain) for s in group]
            for domain in domains:
                domain.start()
            pool = ThreadPoolExecutor(max_workers=len(domains))
            try:
                waits = [pool.submit(d.agent().wait_ready, env.boot_timeout) for d in domains]
                for wait in waits:
                    wait.result()
                    step.advance()
            finally:
                # on failure do not wait for the other guests: the lab is about to be removed
                pool.shutdown(wait=False, cancel_futures=True)
    with reporter.step("network addresses", total=len(env.servers)) as step:
        for server in env.servers:
            _wait_for_addresses(hypervisor, record, server, reporter)
            step.advance()


def _wait_until_booted(domain, server: Server, timeout: float, reporter: Reporter) -> None:
    """Wait for the guest's services to finish starting (a database recovering after the
    crash-consistent copy, say), so the clean snapshot is of a ready system."""
    result = domain.agent().exec(["systemctl", "is-system-running", "--wait"], timeout=timeout)
    state = result.stdout.strip() or result.stderr.strip()
    if state not in ("running", "degraded"):
        reporter.note(f"server {server.name}: boot ended in state '{state or 'unknown'}'")


def _wait_for_addresses(hypervisor: Hypervisor, record: LabRecord, server: Server, reporter: Reporter,
                        timeout: float = 60) -> None:
    """Wait until the guest reports production's IPs on production's MACs.

    The agent answers before the guest has configured its network. A guest that
    never takes its addresses (production used DHCP, say: a lab has no DHCP
    server) is reported, not failed: it is still reachable through the agent.
    """
    agent = hypervisor.domain(record.servers[server.name].domain).agent()
    wanted = {(nic.mac, str(nic.ip)) for nic in server.nics}
    deadline = time.monotonic() + timeout
    while True:
        have = {(nic["mac"], ip) for nic in agent.interfaces() for ip in nic["ipv4"]}
        if wanted <= have:
            return
        if time.monotonic() > deadline:
            missing = ", ".join(f"{ip} on {mac}" for mac, ip in sorted(wanted - have))
            reporter.note(f"server {server.name}: the guest has not configured {missing} "
                          f"within {timeout:.0f} s of booting")
            return
        time.sleep(1)
