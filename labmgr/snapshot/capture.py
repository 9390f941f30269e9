"""Capture a consistent point-in-time copy of every production server.

Production is never changed: a running domain is copied with libvirt's backup
API in push mode (QEMU copies the disks while the guest runs; no overlay is
added to production's backing chain and nothing is written to its disks), with
its filesystems frozen through the guest agent for the instant the backups
start, if the agent answers. A shut-off domain's disks are read with
``qemu-img convert``. All running servers are frozen together and their backups
started together, so the copies of different servers are of the same moment.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from ..atomic import atomic_write
from ..errors import LabmgrError, SnapshotError
from ..hostbase import Host
from ..hosts import host_for
from ..hypervisor import Domain, Hypervisor, connect
from ..journal import Intent, intent
from ..lab.clone import check_nics, network_disk_error
from ..progress import SILENT, Reporter
from ..spec import Environment
from ..storage import snapshot_dir, storage_root
from ..xml.builder import DomainXML, backup_xml
from . import guestfacts
from .watchdog import watchdog
from .store import DiskCopy, ServerCopy, Snapshot, environment_dir, remove_partial

COPIED_DEVICES = ("disk", "lun")
OS_FILES = ("kernel", "initrd", "loader", "nvram")


def capture(env: Environment, reporter: Reporter = SILENT) -> Snapshot:
    site = env.hypervisors[0]           # production's hypervisor
    with connect(site.uri) as hypervisor, host_for(site.uri) as host:
        return _capture(env, hypervisor, host, storage_root(site), reporter)


def _capture(env: Environment, hypervisor: Hypervisor, host: Host, root: PurePosixPath, reporter: Reporter) -> Snapshot:
    """Definitions and manifest go to the local snapshot directory; the images are written on the
    hypervisor's host (by QEMU, or qemu-img there), into its storage."""
    started = time.monotonic()
    # Look everything up before writing anything: a missing domain fails fast.
    domains = {server.name: hypervisor.domain(server.domain) for server in env.servers}
    definitions = {}
    for server in env.servers:
        xml = DomainXML(domains[server.name].xml(inactive=True))
        check_nics(xml, server)
        for disk in xml.disks():
            if disk.kind == "network" and disk.device in COPIED_DEVICES:
                raise network_disk_error(server.name, disk)
        definitions[server.name] = xml

    taken_at = datetime.now(timezone.utc)
    snapshot_id = _new_id(env.name, taken_at)
    final = environment_dir(env.name) / snapshot_id
    partial = final.with_name(f".partial-{snapshot_id}")
    host_final = snapshot_dir(root, env.name, snapshot_id)
    host_partial = host_final.with_name(f".partial-{snapshot_id}")
    shared = str(host_partial) == str(partial)     # a local hypervisor storing under the state directory
    # written down before anything is made: a SIGKILL leaves the next labmgr command
    # (labmgr.recovery) what to thaw, abort and remove
    with intent("capture", uri=hypervisor.uri, partial=str(partial), host_partial=str(host_partial),
                frozen=[]) as journal:
        return _write_snapshot(env, hypervisor, host, domains, definitions, journal, snapshot_id, taken_at,
                               started, (partial, final, host_partial, host_final, shared), reporter)


def _write_snapshot(env, hypervisor, host, domains, definitions, journal: Intent, snapshot_id: str,
                    taken_at: datetime, started: float, where, reporter: Reporter) -> Snapshot:
    partial, final, host_partial, host_final, shared = where
    partial.mkdir(parents=True)
    try:
        host.mkdir(host_partial)
        host.make_traversable(host_partial)
        servers = {name: _prepare_server(partial, host, host_partial, name, domains[name], definitions[name])
                   for name in definitions}
        running = [name for name in servers if domains[name].is_active()]
        stopped = [name for name in servers if name not in running]
        _backup_running(host_partial, running, domains, definitions, servers, journal, reporter)
        for name in stopped:
            _copy_stopped(hypervisor, host, host_partial, name, definitions[name], servers[name], reporter)
        for name, copy in servers.items():
            _learn_guest(host, host_partial, domains[name], definitions[name], copy)
        snapshot = Snapshot(id=snapshot_id, environment=env.name, hypervisor=env.hypervisor,
                            taken_at=taken_at.isoformat(timespec="seconds"),
                            seconds=round(time.monotonic() - started, 2), servers=servers, path=final,
                            storage=str(host_final))
        _seal(partial, host, host_partial, snapshot)
        if not shared:
            host.rename(host_partial, host_final)
        os.rename(partial, final)
        return snapshot
    except BaseException:
        remove_partial(partial)
        if not shared:
            _remove_quietly(host, host_partial)
        raise


def _remove_quietly(host: Host, directory: PurePosixPath) -> None:
    try:
        host.remove_tree(directory)
    except LabmgrError:
        pass                            # the capture's own error is the one to report


def _new_id(environment: str, taken_at: datetime) -> str:
    base = taken_at.strftime("%Y%m%dT%H%M%SZ")
    root = environment_dir(environment)
    candidate, n = base, 1
    while (root / candidate).exists() or (root / f".partial-{candidate}").exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _prepare_server(partial: Path, host: Host, host_partial: PurePosixPath, name: str, domain: Domain,
                    xml: DomainXML) -> ServerCopy:
    folder = partial / name
    folder.mkdir(exist_ok=True)
    (folder / "domain.xml").write_text(str(xml))
    host.mkdir(host_partial / name)
    copy = ServerCopy(domain=domain.name, state=domain.state,
                      method="backup" if domain.is_active() else "copy", frozen=False,
                      xml=f"{name}/domain.xml")
    for tag in OS_FILES:
        source = xml.os_file(tag)
        if source:
            if not host.exists(source):
                raise SnapshotError(f"server {name}: <os><{tag}> file {source} of domain '{domain.name}' is missing")
        elif tag == "nvram" and xml.firmware() == "efi":
            source = domain.nvram_path()     # libvirt chose the firmware; a never-booted domain has none yet
            if not source or not host.exists(source):
                continue
        else:
            continue
        # read, never opened for write: production's NVRAM and firmware stay as they are
        host.copy(source, host_partial / name / tag)
        copy.os_files[tag] = f"{name}/{tag}"
    for disk in xml.disks():
        if disk.device in COPIED_DEVICES:
            copy.disks.append(DiskCopy(target=disk.target, image=f"{name}/{disk.target}.qcow2"))
    return copy


def _backup_running(partial: PurePosixPath, names: list[str], domains: dict[str, Domain],
                    definitions: dict[str, DomainXML], servers: dict[str, ServerCopy], journal: Intent,
                    reporter: Reporter) -> None:
    if not names:
        return
    started: list[str] = []
    try:
        with watchdog(journal), ExitStack() as thaw:     # thawed in-process first, then the watchdog told
            for name in names:
                if domains[name].agent().ping():
                    journal.update(frozen=[*journal.data["frozen"], domains[name].name])
                    try:
                        domains[name].freeze_filesystems()
                    except LabmgrError as exc:
                        reporter.note(f"{name}: could not freeze filesystems ({exc}); copy is crash-consistent")
                    else:
                        servers[name].frozen = True
                        thaw.callback(domains[name].thaw_filesystems)
                else:
                    reporter.note(f"{name}: no guest agent answered; copy is crash-consistent")
            with reporter.step("start backups (filesystems frozen)", total=len(names)) as step:
                for name in names:
                    wanted = {d.target for d in servers[name].disks}
                    domains[name].begin_backup(backup_xml([
                        (disk.target, partial / name / f"{disk.target}.qcow2" if disk.target in wanted else None)
                        for disk in definitions[name].disks()]))
                    started.append(name)
                    step.advance()
        journal.update(frozen=[])
        # thawed here: the copy's point in time is the start of the backup jobs
        for name in names:
            with reporter.step(f"backup {name}", total=100) as step:
                domains[name].wait_for_backup(
                    lambda p, step=step: step.update(completed=p.processed, total=p.total or 1))
    except BaseException:
        for name in started:
            domains[name].abort_job()
        raise


def _learn_guest(host: Host, host_partial: PurePosixPath, domain: Domain, xml: DomainXML, copy: ServerCopy) -> None:
    """Its agent's state and its SSH host keys, for its labs (a lab login is checked against them)."""
    copy.agent = guestfacts.agent_state(domain, xml)
    if copy.agent == guestfacts.EXEC:
        copy.host_keys = guestfacts.keys_through_agent(domain)
    if not copy.host_keys and copy.disks:
        copy.host_keys = guestfacts.keys_from_disk(host, host_partial / copy.disks[0].image, host_partial)


def _copy_stopped(hypervisor: Hypervisor, host: Host, partial: PurePosixPath, name: str, xml: DomainXML,
                  copy: ServerCopy, reporter: Reporter) -> None:
    sources = {disk.target: disk for disk in xml.disks()}
    for disk_copy in copy.disks:
        disk = sources[disk_copy.target]
        source = disk.source
        if disk.kind == "volume" and disk.pool and disk.volume:
            source = hypervisor.volume_path(disk.pool, disk.volume)
        if disk.kind not in ("file", "block", "volume") or not source:
            raise SnapshotError(f"server {name}: disk {disk.target} is a {disk.kind} disk; a shut-off "
                                "domain can only be copied from file, block and volume disks",
                                hint="start the domain so the backup API copies it")
        with reporter.step(f"copy {name} {disk.target}", total=None):
            command = ["qemu-img", "convert", "-O", "qcow2"]
            if disk.driver_type:
                command += ["-f", disk.driver_type]
            result = host.run([*command, source, str(partial / disk_copy.image)], check=False)
        if not result.ok:
            raise SnapshotError(f"server {name}: copying {source} failed: {result.stderr.strip()}")


def _seal(partial: Path, host: Host, host_partial: PurePosixPath, snapshot: Snapshot) -> None:
    """Make the copies read-only and readable by QEMU, record sizes, write the manifest."""
    for server in snapshot.servers.values():
        for disk in server.disks:
            image = host_partial / disk.image
            if not host.exists(image):
                raise SnapshotError(f"backup of {server.domain} {disk.target} produced no image")
            disk.size = host.size(image)
    for relative in snapshot.host_files():
        host.chmod(host_partial / relative, 0o444)
    for name in snapshot.servers:
        host.chmod(host_partial / name, 0o755)
    host.chmod(host_partial, 0o755)
    for path in partial.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o444)
    partial.chmod(0o755)
    atomic_write(partial / "manifest.json", snapshot.to_json(), mode=0o444)
