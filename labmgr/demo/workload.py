"""Twenty-four simulated hours of the demo's business, with the hourly dumps after each.

The hours are the last whole hours before now, so `lab restore --at latest`
restores the newest and `--at "3 hours ago"` means what it says. After each
hour the dumps are collected with labmgr's own collection (what `labmgr dumps
collect --taken-at` runs), stamped with that hour. Around one hour's
collection an invoice is taken out of the database and put back right after:
that hour's dump is quietly missing it, as a broken backup would be, and
nothing else is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..dumps.errors import DumpError
from ..dumps.hourly import collect
from ..errors import SpecError
from ..hypervisor import Hypervisor
from ..progress import Reporter
from ..spec import Environment
from ..timeparse import format_point

WORKLOAD = "/usr/local/bin/lmdemo-workload"   # where servers/<name>/setup.sh installs workload.sh
HOUR_TIMEOUT = 300


@dataclass(frozen=True)
class Day:
    hours: list[datetime]        # oldest first; the dumps are stamped with these
    bad_hour: datetime           # its dump misses one invoice
    lost_invoice: int


def simulated_hours(now: datetime, count: int = 24) -> list[datetime]:
    newest = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return [newest - timedelta(hours=count - 1 - i) for i in range(count)]


def workload_server(env: Environment, folder: Path) -> str:
    """The server whose folder carries workload.sh: the users' workstation."""
    found = [s.name for s in env.servers if (folder / "servers" / s.name / "workload.sh").is_file()]
    if len(found) != 1:
        raise SpecError(f"the demo needs workload.sh in exactly one of {folder / 'servers'}/<server>/ "
                        f"(found it for: {', '.join(found) or 'none'})")
    return found[0]


def run_day(hypervisor: Hypervisor, env: Environment, domain: str, hours: list[datetime], bad_hour: datetime,
            reporter: Reporter) -> Day:
    agent = hypervisor.domain(domain).agent(timeout=60)
    lost = 0
    with reporter.step(f"workload: {len(hours)} hours, dumps collected after each", total=len(hours)) as step:
        for hour in hours:
            step.update(label=f"workload: hour ending {hour:%H:%M}, then its dumps")
            agent.run([WORKLOAD, "hour", format_point(hour)], timeout=HOUR_TIMEOUT)
            if hour == bad_hour:
                lost = int(agent.run([WORKLOAD, "hide"], timeout=HOUR_TIMEOUT).strip())
            try:
                result = collect(env, taken_at=hour)
            finally:
                if hour == bad_hour:
                    agent.run([WORKLOAD, "unhide"], timeout=HOUR_TIMEOUT)
            if result.failed:
                _, error = result.failed[0]
                raise DumpError(f"collecting the dumps of {format_point(hour)} failed: {error}")
            step.advance()
    return Day(hours=hours, bad_hour=bad_hour, lost_invoice=lost)
