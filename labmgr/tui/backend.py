"""The TUI's one seam to the core: what the screens may ask for, and the real implementation.

Every method blocks (libvirt, guest agents, SQLite) and is called from a worker
thread, never from the event loop. ``CoreBackend`` only calls the same core
functions the command line calls; tests pass a fake with the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

from ..dumps.catalog import Cell
from ..history import Signoff
from ..lab.servers import ServerInfo
from ..notify.model import ProbeResult
from ..progress import Reporter

Column = tuple[str, str]                      # (server, dump source)
Grid = dict[datetime, dict[Column, Cell]]     # hour -> cells, as Catalog.timeline gives it


@dataclass(frozen=True)
class LabRow:
    """One lab as the Labs screen lists it."""

    name: str
    state: str
    environment: str
    spec: str = ""
    hypervisor: str = ""
    snapshot: str = ""
    point: str = ""                 # the point in time it is at ('' = clean clone)
    lease_until: str = ""
    last_probe: str = ""            # '3/3 passed' of the newest probe run at its point
    last_probe_ok: bool | None = None
    running: int | None = None      # running domains; None: not asked (the record alone was read)
    domains: int = 0
    shares: int = 0                 # open share links (labmgr share)


@dataclass(frozen=True)
class TimelineShape:
    """The grid's frame: its columns and the span of hours the catalog covers."""

    environment: str
    columns: list[Column]
    newest: datetime | None         # hours, floored
    oldest: datetime | None


@dataclass(frozen=True)
class HourProfile:
    """A restored hour's data profile next to the nearest earlier hour's (the drift probe's view)."""

    point: str
    previous: str                   # '' when no earlier hour was profiled
    rows: list[tuple[str, str, str, bool]] = field(default_factory=list)   # what, earlier, this hour, changed


@dataclass(frozen=True)
class ProbeRun:
    point: str
    results: list[ProbeResult] = field(default_factory=list)


class Backend(Protocol):
    # labs
    def labs(self) -> list[LabRow]: ...
    def lab(self, name: str) -> LabRow: ...
    def snapshots(self, spec: Path) -> list[str]: ...
    def lab_up(self, spec: Path, name: str | None, snapshot: str | None, reporter: Reporter) -> str: ...
    def lab_down(self, name: str, reporter: Reporter) -> None: ...
    def extend_lease(self, name: str, hours: float) -> str: ...
    # timeline
    def timeline_shape(self, spec: Path) -> TimelineShape: ...
    def timeline(self, spec: Path, since: datetime, until: datetime) -> Grid: ...
    def complete_hours(self, spec: Path, since: datetime, until: datetime) -> list[datetime]: ...
    def verdicts(self, lab: str) -> dict[datetime, bool]: ...
    def restore(self, lab: str, at: datetime, reporter: Reporter) -> str: ...
    def flagged_hours(self, spec: Path) -> set[datetime]: ...
    def bisect(self, lab: str, probes_file: Path, until: datetime | None, reporter: Reporter) -> str: ...
    def drifted_hours(self, lab: str) -> set[datetime]: ...
    def hour_profile(self, lab: str, hour: datetime) -> HourProfile | None: ...
    # probes
    def probe_run(self, lab: str) -> ProbeRun | None: ...
    def run_probes(self, lab: str, probes_file: Path, only: list[str] | None) -> ProbeRun: ...
    # servers
    def servers(self, lab: str) -> list[ServerInfo]: ...
    def console_command(self, lab: str, server: str) -> list[str]: ...
    def ssh_command(self, lab: str, server: str) -> list[str]: ...
    # shares (labmgr share)
    def shares(self, lab: str) -> list: ...
    def end_share(self, lab: str, share: str) -> None: ...
    def withdraw_link(self, lab: str, share: str, person: str) -> None: ...
    # evidence
    def signoffs(self, lab: str) -> list[Signoff]: ...
    def sign_off(self, lab: str, user: str, note: str) -> Signoff: ...
    def export_report(self, lab: str, fmt: str, path: Path) -> Path: ...


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


class CoreBackend:
    """The real thing: each method is one call (or a few) into labmgr's core."""

    def check(self, spec: Path | None, lab: str | None,
              probes: Path | None) -> tuple[Path | None, LabRow | None, Path | None]:
        """Refuse bad input before the TUI starts: an unreadable spec or probe file, an unknown lab."""
        from ..errors import NotFoundError
        from ..probes import load_probes
        from ..spec import load_environment

        env = load_environment(spec) if spec else None
        row = self.lab(lab) if lab else None
        if probes:
            if not Path(probes).is_file():
                raise NotFoundError(f"no probe file {probes}")
            target = env or (load_environment(row.spec) if row else None)
            if target is not None:            # without an environment it is checked when probes run
                load_probes(probes, target)
        return (Path(spec).absolute() if spec else None, row, Path(probes).absolute() if probes else None)

    def labs(self) -> list[LabRow]:
        from ..lab.inventory import list_labs

        rows = []
        for status in list_labs(["qemu:///system"]):
            running = sum(1 for s in status.domains.values() if s == "running")
            if status.record:
                rows.append(_row(status.record, running, len(status.domains)))
            else:
                rows.append(LabRow(status.name, status.state, status.environment, hypervisor=status.hypervisor,
                                   running=running, domains=len(status.domains)))
        return rows

    def lab(self, name: str) -> LabRow:
        """The lab's record only (no libvirt): fast enough to ask after every restore."""
        from ..lab import records

        record = records.load(name)
        return _row(record, None, len(record.servers))

    def snapshots(self, spec: Path) -> list[str]:
        from ..snapshot import list_snapshots
        from ..spec import load_environment

        return [s.id for s in reversed(list_snapshots(load_environment(spec).name))]

    def lab_up(self, spec: Path, name: str | None, snapshot: str | None, reporter: Reporter) -> str:
        from ..lab.up import lab_up
        from ..spec import load_environment

        return lab_up(load_environment(spec), spec, name=name or None, snapshot_id=snapshot or None,
                      reporter=reporter).name

    def lab_down(self, name: str, reporter: Reporter) -> None:
        from ..lab.teardown import lab_down

        lab_down(name, reporter, hypervisor_uri="qemu:///system")

    def extend_lease(self, name: str, hours: float) -> str:
        from ..lab.lease import extend_lease

        return extend_lease(name, hours).lease_until

    def timeline_shape(self, spec: Path) -> TimelineShape:
        from ..dumps.store import store_for
        from ..spec import load_environment

        from ..sources.pitr import span_with_ranges

        env = load_environment(spec)
        with store_for(env) as store:
            newest, oldest = span_with_ranges(store.catalog)
        return TimelineShape(env.name, _columns(env), newest and hour_of(newest), oldest and hour_of(oldest))

    def timeline(self, spec: Path, since: datetime, until: datetime) -> Grid:
        from ..dumps.store import store_for
        from ..spec import load_environment

        from ..sources.pitr import with_ranges

        with store_for(load_environment(spec)) as store:        # a pgBackRest range fills its hours
            return with_ranges(store.catalog, store.catalog.timeline(since, until), since, until)

    def complete_hours(self, spec: Path, since: datetime, until: datetime) -> list[datetime]:
        from ..dumps.store import store_for
        from ..spec import load_environment

        from ..sources.pitr import complete_hours

        env = load_environment(spec)
        with store_for(env) as store:
            return complete_hours(store.catalog, _columns(env), since, until)

    def verdicts(self, lab: str) -> dict[datetime, bool]:
        from ..lab.evidence import evidence_for
        from ..timeparse import parse_point

        out: dict[datetime, bool] = {}
        for run in evidence_for(lab).runs:          # oldest first: the newest run of an hour wins
            if run.point:
                out[hour_of(parse_point(run.point))] = run.exit_code == 0
        return out

    def restore(self, lab: str, at: datetime, reporter: Reporter) -> str:
        from ..dumps.store import store_for
        from ..lab import records
        from ..lab.restore import lab_restore
        from ..sources.pitr import hour_point
        from ..spec import load_environment
        from ..timeparse import format_point

        with store_for(load_environment(Path(records.load(lab).spec))) as store:
            at = hour_point(store.catalog, at)      # the first hour of a pgBackRest range starts inside it
        lab_restore(lab, format_point(at), reporter)
        return records.load(lab).point["at"]

    def flagged_hours(self, spec: Path) -> set[datetime]:
        """Hours holding a dump a YARA rule matched in (labmgr dumps scan)."""
        from ..dumps.scans import ScanBook
        from ..dumps.store import store_for
        from ..spec import load_environment

        with store_for(load_environment(spec)) as store:
            newest, oldest = store.catalog.span()
            if newest is None:
                return set()
            return ScanBook(store.catalog.db).flagged_hours(oldest, newest + timedelta(hours=1))

    def bisect(self, lab: str, probes_file: Path, until: datetime | None, reporter: Reporter) -> str:
        from ..lab.bisect import bisect_lab
        from ..timeparse import format_point

        result = bisect_lab(lab, probes_file, until=until and format_point(until + timedelta(minutes=59)),
                            reporter=reporter)
        return f"{result.message} ({result.restores} restores of at most {result.budget})"

    def drifted_hours(self, lab: str) -> set[datetime]:
        """Hours whose newest probe run at them has a failed drift probe."""
        from ..lab.evidence import evidence_for
        from ..timeparse import parse_point

        newest: dict[datetime, bool] = {}
        for run in evidence_for(lab).runs:
            drifts = [r for r in run.results if r.kind == "drift"]
            if run.point and drifts:
                newest[hour_of(parse_point(run.point))] = not all(r.passed for r in drifts)
        return {hour for hour, drifted in newest.items() if drifted}

    def hour_profile(self, lab: str, hour: datetime) -> HourProfile | None:
        from ..history import history_for
        from ..history_evidence import compare_hour
        from ..lab import records
        from ..spec import load_environment

        env = load_environment(records.load(lab).spec)
        with history_for(env) as history:
            found = compare_hour(history, env.name, hour)
        return None if found is None else HourProfile(*found)

    def probe_run(self, lab: str) -> ProbeRun | None:
        from ..lab import records
        from ..lab.evidence import evidence_for

        point = records.load(lab).point.get("at", "")
        runs = [r for r in evidence_for(lab).runs if r.point == point]
        if not runs:
            return None
        return ProbeRun(point, [ProbeResult(r.name, r.server, r.kind, r.severity, r.passed, r.seconds, r.detail,
                                            r.output_tail) for r in runs[-1].results])

    def run_probes(self, lab: str, probes_file: Path, only: list[str] | None) -> ProbeRun:
        from ..lab.probing import probe_lab

        summary = probe_lab(lab, probes_file, only)
        return ProbeRun(summary.point, summary.results)

    def servers(self, lab: str) -> list[ServerInfo]:
        from ..lab.servers import server_info

        return server_info(lab)

    def console_command(self, lab: str, server: str) -> list[str]:
        from ..errors import NotFoundError
        from ..lab import records
        from ..lab.servers import console_command

        record = records.load(lab)
        if server not in record.servers:
            raise NotFoundError(f"lab {lab} has no server '{server}'")
        return console_command(record.hypervisor, record.servers[server].domain)

    def ssh_command(self, lab: str, server: str) -> list[str]:
        """`labmgr ssh LAB SERVER` (through the lab's door), run with the terminal handed over."""
        import sys

        from ..lab import records
        from ..spec import load_environment

        record = records.load(lab)
        hostname = load_environment(record.spec).server(server).hostname
        return [sys.executable, "-m", "labmgr", "ssh", lab, hostname]

    def shares(self, lab: str) -> list:
        from ..access.share.state import active_shares

        return active_shares(lab)

    def end_share(self, lab: str, share: str) -> None:
        from ..access.share.state import end_share, find_share

        end_share(find_share(lab, share))

    def withdraw_link(self, lab: str, share: str, person: str) -> None:
        from ..access.share.state import revoke_person

        revoke_person(lab, share, person)

    def signoffs(self, lab: str) -> list[Signoff]:
        from ..lab.evidence import evidence_for

        return evidence_for(lab).signoffs

    def sign_off(self, lab: str, user: str, note: str) -> Signoff:
        from ..lab.evidence import sign_off

        return sign_off(lab, user, note)

    def export_report(self, lab: str, fmt: str, path: Path) -> Path:
        from ..history import now
        from ..lab.evidence import evidence_for
        from ..report import render_report

        path = Path(path).expanduser()
        path.write_text(render_report(evidence_for(lab), fmt, now()))
        return path


def _columns(env) -> list[Column]:
    return [(server.name, source.name) for server in env.servers for source in server.dumps]


def _row(record, running: int | None, domains: int) -> LabRow:
    """A lab record as a row, with the verdict of its newest probe run at its current point."""
    from ..errors import LabmgrError
    from ..lab.evidence import evidence_for

    point = record.point.get("at", "")
    last, ok = "", None
    if record.state == "up":
        try:
            runs = [r for r in evidence_for(record.name).runs if r.point == point]
        except LabmgrError:
            runs = []
        if runs:
            passed = sum(1 for r in runs[-1].results if r.passed)
            last, ok = f"{passed}/{len(runs[-1].results)} passed", runs[-1].exit_code == 0
    from ..access.share.state import active_shares

    shares = len(active_shares(record.name)) if record.state == "up" else 0
    return LabRow(record.name, record.state, record.environment, record.spec, record.hypervisor, record.snapshot,
                  point, record.lease_until, last, ok, running, domains, shares)
