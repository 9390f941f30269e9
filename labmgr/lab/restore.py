"""Put a running lab back to a point in time: `labmgr lab restore LAB --at TIME`.

For each server, the newest good dump of each of its sources taken at or before
TIME. Every chosen dump is checked against its catalogued sha256 before the lab
is touched. Then, for every server at once: revert to the clean snapshot, inject
that hour's dumps through the hypervisor, restore them. If anything fails, the
whole lab reverts to the point it was at before, and the error names the
server, the dump and the tail of the restore command's output. Only a fully
restored lab is recorded as being at the new point.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from ..dumps.errors import DumpError
from ..dumps.inject import DEFAULT_RESTORE, Restore, inject_and_restore
from ..dumps.media import MediaFile, build_iso
from ..dumps.record import DumpRecord, plain_name
from ..dumps.store import DumpStore, store_for
from ..dumps.streams import HashingWriter, copy, sha256_file
from ..errors import LabError, LabmgrError
from ..history import history_for
from ..hostbase import Host
from ..hosts import host_for
from ..hypervisor import Hypervisor, connect
from ..progress import SILENT, Reporter, shielded, stage
from ..sources.datadisk import restore_data_disk
from ..sources.pgrestore import DataDisk, restore_to_disk
from ..spec import Environment, load_environment
from ..spec.model import DumpSource
from ..timeparse import format_point
from . import records
from .lastclean import resolve_point
from .pointplan import PointPlan, plan_point
from .guestchannel import channel_for
from .pointintime import CLEAN, PREVIOUS, check_agents, points_of
from .interrupted import drop_stale_previous, settle
from .records import LabRecord


@dataclass
class RestoreResult:
    lab: str
    plan: PointPlan
    seconds: dict[str, float] = field(default_factory=dict)


def lab_restore(name: str, at_text: str, reporter: Reporter = SILENT) -> RestoreResult:
    record = records.load(name)
    if record.state != "up":
        raise LabError(f"lab {name} is {record.state}, not up", hint=f"'labmgr lab show {name}'")
    env = load_environment(record.spec)
    with records.lab_lock(name), store_for(env) as store:
        record = records.load(name)         # as it is now that it is ours
        if record.state != "up":
            raise LabError(f"lab {name} is {record.state}, not up", hint=f"'labmgr lab show {name}'")
        at = resolve_point(env, store, at_text)      # a time, or 'last-clean' (scans + probe history)
        plan = plan_point(env, store, at)
        with connect(record.hypervisor) as hypervisor, host_for(record.hypervisor) as host:
            drop_stale_previous(hypervisor, host, record)
            record.state, record.restoring = "restoring", {"at": format_point(at), "requested": at_text}
            record.save()
            staging = _staging_dir(record)
            try:
                result = _restore(hypervisor, host, env, store, record, plan, staging, reporter,
                                  commit=lambda: _commit(record, plan, at, at_text))
            except BaseException as exc:
                try:     # every VM back at the previous point, and the record saying so
                    settle(records.load(name))
                except LabmgrError as problem:
                    raise LabError(f"{exc}; and the lab could not be put back yet: {problem}",
                                   hint="the next labmgr command tries again ('labmgr lab show "
                                        f"{name}' says where the lab is)") from None
                raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    with history_for(env) as history:
        history.record_restore(record.name, env.name, record.point)
    return result


def _staging_dir(record: LabRecord) -> Path:
    """``media/`` (0711: QEMU, which libvirt makes the owner of the ISO it attaches, can reach
    it; nobody can list it) for the ISOs, ``media/plain/`` (0700) for decrypted dumps."""
    staging = record.directory / "media"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o711)
    staging.chmod(0o711)
    (staging / "plain").mkdir(mode=0o700)
    return staging


def _commit(record: LabRecord, plan: PointPlan, at: datetime, at_text: str) -> None:
    """Every VM is at the new point: say so, before the previous point's snapshots go."""
    record.point = {"at": format_point(at), "requested": at_text, "dumps": plan.describe(),
                    "skew_seconds": plan.skew.total_seconds(),
                    "restored_at": format_point(datetime.now(timezone.utc))}
    record.state, record.restoring = "up", {}
    record.save()


def _restore(hypervisor: Hypervisor, host: Host, env: Environment, store: DumpStore, record: LabRecord,
             plan: PointPlan, staging: Path, reporter: Reporter, commit) -> RestoreResult:
    result = RestoreResult(record.name, plan)
    started = time.monotonic()
    media: dict[str, tuple[Path | None, str, list[Restore]]] = {}
    disks: dict[str, list[DataDisk]] = {}
    with reporter.step("check and stage dumps", total=len(plan.chosen)) as step:
        for server, pairs in plan.chosen.items():
            dumped = [(source, dump) for source, dump in pairs if source.pgbackrest is None]
            media[server] = _stage(env, store, server, dumped, staging) if dumped else (None, "", [])
            step.advance()
    clusters = [(server, source) for server, pairs in plan.chosen.items() for source, _ in pairs
                if source.pgbackrest is not None]
    if clusters:         # restored and replayed here, to the second; the lab never reaches the repository
        with reporter.step(f"restore pgBackRest to {format_point(plan.at)}", total=len(clusters)) as step:
            for server, source in clusters:
                disks.setdefault(server, []).append(restore_to_disk(source.pgbackrest, plan.at, staging,
                                                                    f"{server}/{source.name}"))
                step.advance()
    result.seconds["stage"] = round(time.monotonic() - started, 2)
    # QEMU opens the ISO on the hypervisor's host: it goes there (for a local one it is there already)
    on_host = record.host_directory / "media"
    if str(on_host) != str(staging):
        with reporter.step(f"upload media to {host.name}", total=len(media)) as step:
            host.remove_tree(on_host)
            host.mkdir(on_host)
            host.make_traversable(on_host)
            for server, (iso, label, restores) in media.items():
                if iso is not None:
                    host.put(iso, on_host / iso.name)
                    media[server] = (on_host / iso.name, label, restores)
                disks[server] = [_put(host, disk, on_host) for disk in disks.get(server, [])]
                step.advance()
    try:
        return _restore_at_point(hypervisor, host, record, plan, media, disks, result, reporter, commit)
    finally:
        if str(on_host) != str(staging):
            host.remove_tree(on_host)


def _put(host: Host, disk: DataDisk, on_host: Path) -> DataDisk:
    host.put(disk.path, on_host / disk.path.name)
    return replace(disk, path=on_host / disk.path.name)


def _restore_at_point(hypervisor: Hypervisor, host: Host, record: LabRecord, plan: PointPlan, media: dict,
                      disks: dict, result: RestoreResult, reporter: Reporter, commit) -> RestoreResult:
    domains = {server: hypervisor.domain(record.servers[server].domain) for server in plan.chosen}
    points = {server: points_of(hypervisor, host, record, server) for server in plan.chosen}
    check_agents(list(domains.values()), record, list(domains))
    with reporter.step("keep the current point", total=len(domains)) as step:
        with ThreadPoolExecutor(max_workers=len(domains)) as pool:
            for done in pool.map(lambda keeper: keeper.take(PREVIOUS), points.values()):
                step.advance()
    started = time.monotonic()
    try:
        with reporter.step(f"restore {format_point(plan.at)}", total=len(domains)) as step:
            with ThreadPoolExecutor(max_workers=len(domains)) as pool:
                jobs = {server: pool.submit(_restore_server, points[server], record, server, *media[server],
                                            disks.get(server, []), reporter)
                        for server in domains}
                failures = []
                for server, job in jobs.items():
                    try:
                        seconds = job.result()
                        result.seconds.update({f"{server} {k}": v for k, v in seconds.items()})
                    except Exception as exc:      # every server finishes before the lab is reverted
                        failures.append(exc)
                    step.advance()
        if failures:
            raise failures[0]
        result.seconds["restore"] = round(time.monotonic() - started, 2)
        commit()            # the last thing tried: once recorded, the new point stands
    except BaseException:
        # not cancellable: a lab left half reverted would be at no point at all
        with shielded(reporter).step("revert to the previous point", total=len(domains)) as step:
            for keeper in points.values():
                keeper.revert(PREVIOUS)
                step.advance()
        for keeper in points.values():
            keeper.drop(PREVIOUS)
        raise
    for keeper in points.values():
        keeper.drop(PREVIOUS)
    record.point["seconds"] = result.seconds
    record.save()
    return result


def _restore_server(keeper, record: LabRecord, server: str, iso: Path | None, label: str,
                    restores: list[Restore], disks: list[DataDisk], reporter: Reporter) -> dict[str, float]:
    with stage(reporter, server, "revert"):
        domain = keeper.revert(CLEAN)
    channel = channel_for(domain, record, server, timeout=30)
    seconds: dict[str, float] = {}
    for disk in disks:      # a whole cluster first: dumps of single databases may go on top of it
        seconds.update(restore_data_disk(domain, disk, server, channel, reporter))
    if iso is not None:
        seconds.update(inject_and_restore(domain, iso, label, restores, server, reporter=reporter,
                                          channel=channel).seconds)
    return seconds


def _stage(env: Environment, store: DumpStore, server: str, pairs: list[tuple[DumpSource, DumpRecord]],
           staging: Path) -> tuple[Path, str, list[Restore]]:
    """Check each dump against the catalog, decrypt if needed, and build the server's ISO."""
    identity = env.dumps.encryption.identity_file if env.dumps.encryption else None
    restores = []
    for source, record in pairs:
        if not record.located:         # a backup where it is is checked by its storage as it streams
            _check_stored(store, record)
        if record.encrypted or record.located or record.compression != "none":
            target = staging / "plain" / f"{server}-{source.name}.plain"
            with store.open_plain(record, identity, source.backup) as plain:
                content = _copy_hashing(plain, target)
        else:
            target, content = record.path, record.sha256
        if record.content_sha256 and content != record.content_sha256:
            store.catalog.mark(record.id, "bad", "plaintext does not match its checksum")
            raise DumpError(f"{record.label}: the decrypted dump does not match its checksum; marked bad")
        if record.located and not record.content_sha256:     # the next restore compares with it
            store.catalog.set_content_sha256(record.id, content)
        file = MediaFile(name=plain_name(record.path.name), source=target, sha256=content,
                         kind=record.kind, dump=f"{server}/{source.name}", taken_at=format_point(record.taken_at))
        env_vars = {"LABMGR_DATABASE": source.database or "", "LABMGR_PATH": source.path or ""}
        restores.append(Restore(file, source.restore_command or DEFAULT_RESTORE[source.kind], env_vars))
    label = f"LABMGR_{secrets.token_hex(4).upper()}"
    iso = build_iso(staging / f"{server}.iso", label, [r.media for r in restores])
    return iso, label, restores


def _check_stored(store: DumpStore, record: DumpRecord) -> None:
    """A dump whose stored bytes no longer match the catalog is refused (and marked bad)."""
    try:
        digest, _ = sha256_file(record.path)
    except FileNotFoundError:
        store.catalog.mark(record.id, "bad", "file missing")
        raise DumpError(f"{record.label}: the dump file {record.path} is missing; marked bad") from None
    if digest != record.sha256:
        store.catalog.mark(record.id, "bad", "sha256 mismatch")
        raise DumpError(f"{record.label}: sha256 mismatch (the file was changed or truncated); marked bad",
                        hint="restore another point, or 'labmgr dumps verify' to check the whole store")


def _copy_hashing(source, target: Path) -> str:
    with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:   # never readable by others
        writer = HashingWriter(out)
        copy(source, writer)
    return writer.digest.hexdigest()
