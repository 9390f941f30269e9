"""A fake core for the TUI's tests, in the spirit of httpx's MockTransport.

``FakeBackend`` answers every Backend call from a small in-memory world (two
labs, two days of hourly dumps, probe results, servers, sign-offs). A test
changes the world, or passes ``handler(name, args)`` to answer a call itself
(return ``NotImplemented`` to fall through) - to raise a core error, say.
``slow`` makes chosen calls hang, as a slow hypervisor would, until the test
``release``s them (no fixed sleep: the test decides when the core answers); ``gates`` make a
restore or lab up stop half-way until the test opens the gate. Every call is
recorded in ``calls``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from labmgr.dumps.catalog import Cell
from labmgr.errors import NotFoundError
from labmgr.access.share.state import Person, Share
from labmgr.history import Signoff
from labmgr.lab.servers import ServerInfo
from labmgr.notify.model import ProbeResult
from labmgr.probes.report import exit_code
from labmgr.progress import shielded
from labmgr.timeparse import format_point
from labmgr.probes.profiling import judge_drift, profile_diff
from labmgr.tui.backend import Grid, HourProfile, LabRow, ProbeRun, TimelineShape, hour_of

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=timezone.utc)      # every test's clock
NEWEST = datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)
HOURS = 48
COLUMNS = [("db", "invoices"), ("db", "sessions"), ("app", "uploads")]
SPEC = "/srv/labmgr/shop.yaml"


def clock() -> datetime:
    return NOW


def fake_cell(hour: datetime, column: tuple[str, str]) -> Cell:
    """A fixed pattern: app misses every 7th hour, db/sessions is bad every 11th, uploads are encrypted,
    dumps older than 6 hours are verified."""
    n = int((NEWEST - hour) / timedelta(hours=1))
    if column == ("app", "uploads") and n % 7 == 3:
        return Cell(0, 0, 0, 0)
    bad = 1 if column == ("db", "sessions") and n % 11 == 4 else 0
    good = 0 if bad or n < 6 else 1
    return Cell(1, good, bad, 1 if column == ("app", "uploads") else 0)


def results(failing: bool) -> list[ProbeResult]:
    return [
        ProbeResult("invoice-count", "db", "sql", "critical", True, 0.4, "got 20", "20"),
        ProbeResult("invoice-numbers", "db", "sequence_gaps", "critical", not failing, 0.6,
                    "missing invoice numbers: 7 (1 missing of 1..30)" if failing else
                    "20 invoice numbers, 1..20, none missing",
                    "no\n" + "\n".join(str(n) for n in range(1, 31) if n != 7) if failing else ""),
        ProbeResult("invoices-fresh", "db", "freshness", "critical", True, 0.3, "newest 08:55, RPO 5m", ""),
        ProbeResult("shop-page", "app", "http", "warning", True, 1.2, "200, body matches 'shop ok'", "shop ok"),
    ]


@dataclass
class World:
    labs: dict[str, LabRow] = field(default_factory=lambda: {
        "shop-1": LabRow("shop-1", "up", "shop", SPEC, "qemu:///system", "20261121T060000Z",
                         format_point(NEWEST - timedelta(hours=2)), "2026-11-21T17:30:00Z", "3/4 passed", False, 2, 2,
                         shares=1),
        "drill": LabRow("drill", "up", "shop", SPEC, "qemu:///system", "20261121T060000Z", "",
                        "2026-11-21T09:00:00Z", "", None, 2, 2),
        "broken": LabRow("broken", "failed", "shop", SPEC, "qemu:///system", "20261120T060000Z", "", "", "", None, 0, 2),
    })
    verdicts: dict[datetime, bool] = field(default_factory=lambda: {
        NEWEST - timedelta(hours=2): False, NEWEST - timedelta(hours=5): True})
    runs: dict[tuple[str, str], ProbeRun] = field(default_factory=lambda: {
        ("shop-1", format_point(NEWEST - timedelta(hours=2))): ProbeRun(
            format_point(NEWEST - timedelta(hours=2)), results(failing=True))})
    signoffs: dict[str, list[Signoff]] = field(default_factory=lambda: {"shop-1": [
        Signoff(format_point(NEWEST - timedelta(hours=2)), "alice", "Q3 invoices present", "2026-11-21T09:10:00Z")]})
    snapshots: list[str] = field(default_factory=lambda: ["20261121T060000Z", "20261120T060000Z"])
    shares: dict[str, list[Share]] = field(default_factory=lambda: {"shop-1": [Share(
        "a1b2c3", "shop-1", "shop", "app", "app01.shop.test", "10.77.0.12", 80, "0.0.0.0:8443",
        "https://labmgr.example.com:8443", "2026-11-21T09:00:00Z", "2026-11-21T13:00:00Z", 4242,
        [Person("alice", "0" * 64), Person("bob", "1" * 64)])]})
    failing_points: set[str] = field(default_factory=set)        # probes fail at these points
    restore_error: Exception | None = None                       # raised by restore, after the revert stage
    reverted: list[str] = field(default_factory=list)             # servers put back at the previous point
    flagged: set[datetime] = field(default_factory=set)          # hours a YARA rule matched in
    profiles: dict[datetime, dict[str, dict]] = field(default_factory=dict)   # restored hour -> server -> profile
    consoles: dict[str, tuple[str, str]] = field(default_factory=dict)        # server -> (serial tail, screenshot)


def fake_profile(invoices: int, encrypted: int = 0) -> dict:
    """A data profile as the core takes it (labmgr/probes/profiling.py)."""
    return {"tables": {"shop.invoices": {"rows": invoices, "max_pk": invoices, "counted": "exact"}},
            "files": {"sessions": {"path": "/var/lib/php/sessions", "files": 10, "bytes": 30000,
                                   "high_entropy": encrypted, "extensions": {"": 10}}},
            "errors": []}


class FakeBackend:
    def __init__(self, world: World | None = None, *, slow: tuple[str, ...] = (),
                 handler: Callable[[str, tuple], Any] | None = None) -> None:
        self.world = world or World()
        self.slow = {name: threading.Event() for name in slow}   # name -> set by release(name)
        self.handler = handler
        self.calls: list[tuple[str, tuple]] = []
        self.running: set[str] = set()                  # slow calls not answered yet
        self.gates: dict[str, threading.Event] = {}     # name -> opened by the test
        self.reached: dict[str, threading.Event] = {}   # name -> set when the call waits at its gate
        self.exported: dict[Path, str] = {}

    def _enter(self, name: str, *args: Any) -> Any:
        self.calls.append((name, args))
        if name in self.slow:
            self.running.add(name)
            assert self.slow[name].wait(60), f"the test never released the slow {name} call"
            self.running.discard(name)
        if self.handler is not None:
            answer = self.handler(name, args)
            if answer is not NotImplemented:
                return answer
        return NotImplemented

    def release(self, name: str) -> None:
        """Let the slow call ``name`` answer (now and from now on)."""
        self.slow[name].set()

    def gate(self, name: str) -> tuple[threading.Event, threading.Event]:
        """Make call ``name`` wait half-way; returns (reached, open)."""
        self.gates[name], self.reached[name] = threading.Event(), threading.Event()
        return self.reached[name], self.gates[name]

    def _wait(self, name: str) -> None:
        if name in self.gates:
            self.reached[name].set()
            assert self.gates[name].wait(30), f"the test never opened the {name} gate"

    def _lab(self, name: str) -> LabRow:
        if name not in self.world.labs:
            raise NotFoundError(f"no lab named '{name}'", hint="'labmgr lab list' shows the labs")
        return self.world.labs[name]

    # labs ---------------------------------------------------------------------
    def labs(self) -> list[LabRow]:
        answer = self._enter("labs")
        return answer if answer is not NotImplemented else sorted(self.world.labs.values(), key=lambda r: r.name)

    def lab(self, name: str) -> LabRow:
        answer = self._enter("lab", name)
        return answer if answer is not NotImplemented else self._lab(name)

    def snapshots(self, spec: Path) -> list[str]:
        answer = self._enter("snapshots", spec)
        return answer if answer is not NotImplemented else list(self.world.snapshots)

    def lab_up(self, spec: Path, name: str | None, snapshot: str | None, reporter) -> str:
        answer = self._enter("lab_up", spec, name, snapshot)
        if answer is not NotImplemented:
            return answer
        name = name or f"shop-{len(self.world.labs) + 1}"
        for label, total in (("networks", 1), ("clones", 2), ("boot (waiting for guest agents)", 2)):
            with reporter.step(label, total=total) as step:
                for _ in range(total):
                    step.advance()
        self._wait("lab_up")
        self.world.labs[name] = LabRow(name, "up", "shop", str(spec), "qemu:///system", snapshot or "", "", "", "",
                                       None, 2, 2)
        return name

    def lab_down(self, name: str, reporter) -> None:
        if self._enter("lab_down", name) is not NotImplemented:
            return
        self._lab(name)
        with reporter.step(f"removing lab {name}", total=3) as step:
            for _ in range(3):
                step.advance()
        del self.world.labs[name]

    def extend_lease(self, name: str, hours: float) -> str:
        answer = self._enter("extend_lease", name, hours)
        if answer is not NotImplemented:
            return answer
        lab = self._lab(name)
        until = max(NOW, datetime.fromisoformat(lab.lease_until.replace("Z", "+00:00")) if lab.lease_until else NOW)
        lease = (until + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.world.labs[name] = replace(lab, lease_until=lease)
        return lease

    # timeline -----------------------------------------------------------------
    def timeline_shape(self, spec: Path) -> TimelineShape:
        answer = self._enter("timeline_shape", spec)
        if answer is not NotImplemented:
            return answer
        return TimelineShape("shop", list(COLUMNS), NEWEST, NEWEST - timedelta(hours=HOURS - 1))

    def timeline(self, spec: Path, since: datetime, until: datetime) -> Grid:
        answer = self._enter("timeline", spec, since, until)
        if answer is not NotImplemented:
            return answer
        grid: Grid = {}
        hour = hour_of(until - timedelta(seconds=1))
        while hour >= since and hour >= NEWEST - timedelta(hours=HOURS - 1):
            if hour <= NEWEST:
                grid[hour] = {c: fake_cell(hour, c) for c in COLUMNS if fake_cell(hour, c).exists}
            hour -= timedelta(hours=1)
        return grid

    def complete_hours(self, spec: Path, since: datetime, until: datetime) -> list[datetime]:
        answer = self._enter("complete_hours", spec, since, until)
        if answer is not NotImplemented:
            return answer
        grid = self.timeline(spec, since, until)
        return sorted(h for h, cells in grid.items()
                      if all(c in cells and not cells[c].has_bad for c in COLUMNS))

    def verdicts(self, lab: str) -> dict[datetime, bool]:
        answer = self._enter("verdicts", lab)
        return answer if answer is not NotImplemented else dict(self.world.verdicts)

    def restore(self, lab: str, at: datetime, reporter) -> str:
        answer = self._enter("restore", lab, at)
        if answer is not NotImplemented:
            return answer
        row = self._lab(lab)
        with reporter.step("check and stage dumps", total=2) as step:
            step.advance(2)
        with reporter.step("snapshot the current point", total=2) as step:
            step.advance(2)
        try:
            with reporter.step(f"restore {format_point(at)}", total=2) as step:
                for server in ("db", "app"):
                    reporter.stage(server, "revert", "start")
                    reporter.stage(server, "revert", "done")
                reporter.stage("db", "media", "start")
                reporter.stage("app", "media", "start")
                reporter.stage("app", "media", "done")
                self._wait("restore")
                if self.world.restore_error is not None:
                    reporter.stage("db", "media", "failed")
                    raise self.world.restore_error
                reporter.stage("db", "media", "done")
                for server in ("db", "app"):
                    reporter.stage(server, "restore", "start")
                    reporter.stage(server, "restore", "done")
                    step.advance()
        except BaseException:
            # as the core (labmgr/lab/restore.py): every VM back to the previous point, not cancellable
            with shielded(reporter).step("revert to the previous point", total=2) as step:
                for server in ("db", "app"):
                    self.world.reverted.append(server)
                    step.advance()
            raise
        self.world.labs[lab] = replace(row, point=format_point(at))
        return format_point(at)

    def flagged_hours(self, spec: Path) -> set[datetime]:
        answer = self._enter("flagged_hours", spec)
        return answer if answer is not NotImplemented else set(self.world.flagged)

    def bisect(self, lab: str, probes_file: Path, until: datetime | None, reporter) -> str:
        """Like the core: the newest hour is bad, the failing points are bad, the lab ends at the last good."""
        answer = self._enter("bisect", lab, probes_file, until)
        if answer is not NotImplemented:
            return answer
        hours = sorted(h for h in self.world.verdicts if until is None or h <= until)
        bad = [h for h in hours if format_point(h) in self.world.failing_points or not self.world.verdicts[h]]
        if not hours or not bad:
            return "every probed hour is good"
        first_bad = bad[0]
        good = [h for h in hours if h < first_bad]
        with reporter.step(f"bisect {len(hours)} hours", total=len(hours)) as step:
            for hour in hours:
                reporter.note(f"{format_point(hour)}: {'bad' if hour in bad else 'good'}")
                step.advance()
        if not good:
            return f"the first hour {format_point(hours[0])} is already bad"
        self.world.labs[lab] = replace(self._lab(lab), point=format_point(good[-1]))
        return f"last good hour {format_point(good[-1])}, first bad hour {format_point(first_bad)}"

    def drifted_hours(self, lab: str) -> set[datetime]:
        """As the core: an hour drifted when the drift rules (10% shrink, +20% entropy) fail against
        the nearest earlier profiled hour."""
        answer = self._enter("drifted_hours", lab)
        if answer is not NotImplemented:
            return answer
        self._lab(lab)
        hours, out = sorted(self.world.profiles), set()
        for earlier, hour in zip(hours, hours[1:]):
            for server, profile in self.world.profiles[hour].items():
                passed, _ = judge_drift(profile, self.world.profiles[earlier].get(server),
                                        (format_point(hour), format_point(earlier)), max_shrink=0.1,
                                        max_entropy_jump=0.2)
                if not passed:
                    out.add(hour)
        return out

    def hour_profile(self, lab: str, hour: datetime) -> HourProfile | None:
        answer = self._enter("hour_profile", lab, hour)
        if answer is not NotImplemented:
            return answer
        self._lab(lab)
        if hour not in self.world.profiles:
            return None
        earlier = [h for h in sorted(self.world.profiles) if h < hour]
        before = self.world.profiles[earlier[-1]] if earlier else {}
        now = self.world.profiles[hour]
        rows = [(f"{server}: {what}", old, new, changed) for server in sorted(set(now) | set(before))
                for what, old, new, changed in profile_diff(now.get(server), before.get(server))]
        return HourProfile(format_point(hour), format_point(earlier[-1]) if earlier else "", rows)

    # probes -----------------------------------------------------------------------
    def probe_run(self, lab: str) -> ProbeRun | None:
        answer = self._enter("probe_run", lab)
        if answer is not NotImplemented:
            return answer
        return self.world.runs.get((lab, self._lab(lab).point))

    def run_probes(self, lab: str, probes_file: Path, only: list[str] | None) -> ProbeRun:
        answer = self._enter("run_probes", lab, probes_file, only)
        if answer is not NotImplemented:
            return answer
        point = self._lab(lab).point
        chosen = [r for r in results(point in self.world.failing_points) if only is None or r.name in only]
        run = ProbeRun(point, chosen)
        if only is None:
            self.world.runs[(lab, point)] = run
        self.world.verdicts[hour_of(datetime.fromisoformat(point.replace("Z", "+00:00")))] = exit_code(chosen) == 0
        passed = sum(1 for r in chosen if r.passed)
        self.world.labs[lab] = replace(self._lab(lab), last_probe=f"{passed}/{len(chosen)} passed",
                                       last_probe_ok=exit_code(chosen) == 0)
        return run

    # servers --------------------------------------------------------------------
    def servers(self, lab: str) -> list[ServerInfo]:
        answer = self._enter("servers", lab)
        if answer is not NotImplemented:
            return answer
        self._lab(lab)
        servers = [
            ServerInfo("db", f"{lab}-db", "running", "db01.shop.test", ["10.66.0.11"], "db01.shop.test",
                       ["10.66.0.11"], access=[f"labmgr ssh {lab} db01.shop.test",
                                               f"labmgr forward {lab} db01.shop.test:PORT --listen 127.0.0.1:PORT",
                                               f"labmgr console {lab} db"]),
            ServerInfo("app", f"{lab}-app", "running", "app01.shop.test", ["10.66.0.12"], "",
                       [], agent_error="guest agent of 'shop-1-app' did not answer guest-ping",
                       access=[f"labmgr ssh {lab} app01.shop.test", f"labmgr console {lab} app"]),
        ]
        for info in servers:        # the newest probe run's console evidence, as the core reads it
            info.console_tail, info.screenshot = self.world.consoles.get(info.server, ("", ""))
        return servers

    def console_command(self, lab: str, server: str) -> list[str]:
        answer = self._enter("console_command", lab, server)
        return answer if answer is not NotImplemented else ["true"]

    def ssh_command(self, lab: str, server: str) -> list[str]:
        answer = self._enter("ssh_command", lab, server)
        return answer if answer is not NotImplemented else ["true"]

    # shares ---------------------------------------------------------------------
    def shares(self, lab: str) -> list[Share]:
        answer = self._enter("shares", lab)
        return answer if answer is not NotImplemented else list(self.world.shares.get(lab, []))

    def end_share(self, lab: str, share: str) -> None:
        if self._enter("end_share", lab, share) is NotImplemented:
            self.world.shares[lab] = [s for s in self.world.shares.get(lab, []) if s.id != share]
            self.world.labs[lab] = replace(self._lab(lab), shares=len(self.world.shares[lab]))

    def withdraw_link(self, lab: str, share: str, person: str) -> None:
        if self._enter("withdraw_link", lab, share, person) is NotImplemented:
            for s in self.world.shares.get(lab, []):
                for p in s.people:
                    if s.id == share and p.name == person:
                        p.revoked = True

    # evidence -------------------------------------------------------------------
    def signoffs(self, lab: str) -> list[Signoff]:
        answer = self._enter("signoffs", lab)
        return answer if answer is not NotImplemented else list(self.world.signoffs.get(lab, []))

    def sign_off(self, lab: str, user: str, note: str) -> Signoff:
        answer = self._enter("sign_off", lab, user, note)
        if answer is not NotImplemented:
            return answer
        signoff = Signoff(self._lab(lab).point, user, note, "2026-11-21T09:30:00Z")
        self.world.signoffs.setdefault(lab, []).append(signoff)
        return signoff

    def export_report(self, lab: str, fmt: str, path: Path) -> Path:
        answer = self._enter("export_report", lab, fmt, path)
        if answer is not NotImplemented:
            return answer
        self.exported[Path(path)] = fmt
        return Path(path)


def make_app(backend: FakeBackend | None = None, lab: str | None = "shop-1", **kwargs):
    """The TUI on a fake core, with the tests' fixed clock and user."""
    from labmgr.tui.app import LabmgrApp

    backend = backend or FakeBackend()
    kwargs.setdefault("probes", Path("/srv/labmgr/shop-probes.yaml"))
    return LabmgrApp(backend, lab=backend.world.labs[lab] if lab else None, clock=clock, user="alice", **kwargs)


async def settle(pilot) -> None:
    """Let every worker answer and the screen repaint."""
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()
