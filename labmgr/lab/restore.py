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

import hashlib
import secrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from filelock import FileLock

from ..dumps.errors import DumpError
from ..dumps.inject import DEFAULT_RESTORE, Restore, inject_and_restore
from ..dumps.media import MediaFile, build_iso
from ..dumps.record import DumpRecord
from ..dumps.store import DumpStore, store_for
from ..errors import LabError
from ..history import history_for
from ..hosts import host_for
from ..hypervisor import Hypervisor, connect
from ..progress import SILENT, Reporter, stage
from ..spec import Environment, load_environment
from ..spec.model import DumpSource
from ..timeparse import format_point, parse_point
from . import records
from .pointintime import CLEAN, PREVIOUS, check_agents, points_of
from .records import LabRecord


@dataclass
class PointPlan:
    at: datetime
    chosen: dict[str, list[tuple[DumpSource, DumpRecord]]]     # server -> its sources' dumps

    @property
    def skew(self) -> timedelta:
        times = [record.taken_at for pairs in self.chosen.values() for _, record in pairs]
        return max(times) - min(times) if times else timedelta(0)

    def describe(self) -> dict[str, str]:
        return {f"{server}/{source.name}": format_point(record.taken_at)
                for server, pairs in self.chosen.items() for source, record in pairs}


@dataclass
class RestoreResult:
    lab: str
    plan: PointPlan
    seconds: dict[str, float] = field(default_factory=dict)


def plan_point(env: Environment, store: DumpStore, at: datetime) -> PointPlan:
    chosen: dict[str, list[tuple[DumpSource, DumpRecord]]] = {}
    for server in env.servers:
        for source in server.dumps:
            record = store.catalog.newest_good_at(server.name, source.name, at)
            if record is None:
                raise DumpError(f"server {server.name} has no good {source.name} dump taken at or before "
                                f"{format_point(at)}", hint=f"'labmgr dumps list {env.name}.yaml --server "
                                f"{server.name}' shows what there is")
            chosen.setdefault(server.name, []).append((source, record))
    if not chosen:
        raise DumpError(f"environment {env.name} declares no dump sources", hint="add dumps: to its servers")
    return PointPlan(at, chosen)


def lab_restore(name: str, at_text: str, reporter: Reporter = SILENT) -> RestoreResult:
    record = records.load(name)
    if record.state != "up":
        raise LabError(f"lab {name} is {record.state}, not up", hint=f"'labmgr lab show {name}'")
    env = load_environment(record.spec)
    at = parse_point(at_text)
    with FileLock(str(record.directory / "restore.lock"), timeout=0), store_for(env) as store:
        plan = plan_point(env, store, at)
        staging = record.directory / "media"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            with connect(record.hypervisor) as hypervisor, host_for(record.hypervisor) as host:
                result = _restore(hypervisor, host, env, store, record, plan, staging, reporter)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    record.point = {"at": format_point(at), "requested": at_text, "dumps": plan.describe(),
                    "skew_seconds": plan.skew.total_seconds(),
                    "restored_at": format_point(datetime.now(timezone.utc)), "seconds": result.seconds}
    record.save()
    with history_for(env) as history:
        history.record_restore(record.name, env.name, record.point)
    return result


def _restore(hypervisor: Hypervisor, host, env: Environment, store: DumpStore, record: LabRecord,
             plan: PointPlan, staging: Path, reporter: Reporter) -> RestoreResult:
    result = RestoreResult(record.name, plan)
    started = time.monotonic()
    media: dict[str, tuple[Path, str, list[Restore]]] = {}
    with reporter.step("check and stage dumps", total=len(plan.chosen)) as step:
        for server, pairs in plan.chosen.items():
            media[server] = _stage(env, store, server, pairs, staging)
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
                host.put(iso, on_host / iso.name)
                media[server] = (on_host / iso.name, label, restores)
                step.advance()
    try:
        return _restore_at_point(hypervisor, host, record, plan, media, result, reporter)
    finally:
        if str(on_host) != str(staging):
            host.remove_tree(on_host)


def _restore_at_point(hypervisor: Hypervisor, host, record: LabRecord, plan: PointPlan, media: dict,
                      result: RestoreResult, reporter: Reporter) -> RestoreResult:
    domains = {server: hypervisor.domain(record.servers[server].domain) for server in plan.chosen}
    points = {server: points_of(hypervisor, host, record, server) for server in plan.chosen}
    check_agents(list(domains.values()))
    with reporter.step("keep the current point", total=len(domains)) as step:
        with ThreadPoolExecutor(max_workers=len(domains)) as pool:
            for done in pool.map(lambda keeper: keeper.take(PREVIOUS), points.values()):
                step.advance()
    started = time.monotonic()
    try:
        with reporter.step(f"restore {format_point(plan.at)}", total=len(domains)) as step:
            with ThreadPoolExecutor(max_workers=len(domains)) as pool:
                jobs = {server: pool.submit(_restore_server, points[server], server, *media[server], reporter)
                        for server in domains}
                failures = []
                for server, job in jobs.items():
                    try:
                        report = job.result()
                        result.seconds.update({f"{server} {k}": v for k, v in report.seconds.items()})
                    except Exception as exc:      # every server finishes before the lab is reverted
                        failures.append(exc)
                    step.advance()
        if failures:
            raise failures[0]
    except BaseException:
        with reporter.step("revert to the previous point", total=len(domains)) as step:
            for keeper in points.values():
                keeper.revert(PREVIOUS)
                step.advance()
        raise
    finally:
        for keeper in points.values():
            keeper.drop(PREVIOUS)
    result.seconds["restore"] = round(time.monotonic() - started, 2)
    return result


def _restore_server(keeper, server: str, iso: Path, label: str, restores: list[Restore], reporter: Reporter):
    with stage(reporter, server, "revert"):
        domain = keeper.revert(CLEAN)
    return inject_and_restore(domain, iso, label, restores, server, reporter=reporter)


def _stage(env: Environment, store: DumpStore, server: str, pairs: list[tuple[DumpSource, DumpRecord]],
           staging: Path) -> tuple[Path, str, list[Restore]]:
    """Check each dump against the catalog, decrypt if needed, and build the server's ISO."""
    identity = env.dumps.encryption.identity_file if env.dumps.encryption else None
    restores = []
    for source, record in pairs:
        _check_stored(store, record)
        with ExitStack() as stack:
            plain = stack.enter_context(store.open_plain(record, identity))
            if record.encrypted:
                target = staging / f"{server}-{source.name}.plain"
                content = _copy_hashing(plain, target)
            else:
                target, content = record.path, record.sha256
        if record.content_sha256 and content != record.content_sha256:
            store.catalog.mark(record.id, "bad", "plaintext does not match its checksum")
            raise DumpError(f"{record.label}: the decrypted dump does not match its checksum; marked bad")
        file = MediaFile(name=record.path.name.removesuffix(".age"), source=target, sha256=content,
                         kind=record.kind, dump=f"{server}/{source.name}", taken_at=format_point(record.taken_at))
        env_vars = {"LABMGR_DATABASE": source.database or "", "LABMGR_PATH": source.path or ""}
        restores.append(Restore(file, source.restore_command or DEFAULT_RESTORE[source.kind], env_vars))
    label = f"LABMGR_{secrets.token_hex(4).upper()}"
    iso = build_iso(staging / f"{server}.iso", label, [r.media for r in restores])
    return iso, label, restores


def _check_stored(store: DumpStore, record: DumpRecord) -> None:
    """A dump whose stored bytes no longer match the catalog is refused (and marked bad)."""
    digest = hashlib.sha256()
    try:
        with open(record.path, "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                digest.update(block)
    except FileNotFoundError:
        store.catalog.mark(record.id, "bad", "file missing")
        raise DumpError(f"{record.label}: the dump file {record.path} is missing; marked bad") from None
    if digest.hexdigest() != record.sha256:
        store.catalog.mark(record.id, "bad", "sha256 mismatch")
        raise DumpError(f"{record.label}: sha256 mismatch (the file was changed or truncated); marked bad",
                        hint="restore another point, or 'labmgr dumps verify' to check the whole store")


def _copy_hashing(source, target: Path) -> str:
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for block in iter(lambda: source.read(2**20), b""):
            digest.update(block)
            out.write(block)
    target.chmod(0o644)
    return digest.hexdigest()
