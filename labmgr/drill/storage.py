"""A drill's look at the backup storage (docs/sources.md): the team's backups indexed where they are,
then each location checked; the findings go into the drill's results and the history."""

from __future__ import annotations

import time

from ..history import History, now
from ..notify.model import CRITICAL, WARNING, ProbeResult, RunSummary
from ..progress import Reporter
from ..sources.index import backup_sources, index
from ..sources.storagecheck import StorageReport, check_storage
from ..sources.storagehistory import record_storage_checks


def drill_storage(env, summary: RunSummary, history: History, reporter: Reporter) -> list[StorageReport]:
    if not backup_sources(env):
        return []
    begun = time.monotonic()
    index(env, reporter)
    reports = check_storage(env, reporter=reporter)
    record_storage_checks(history.db, env.name, now(), reports)
    summary.results.extend(_result(r) for r in reports)
    summary.stages["storage"] = round(time.monotonic() - begun, 2)
    return reports


def _result(report: StorageReport) -> ProbeResult:
    """A stale or empty series fails the drill (no backup to restore tomorrow); the rest warns."""
    critical = report.newest is None or report.age > report.interval * 1.5
    detail = "; ".join(report.problems) or (f"{report.backups} backups, versioning {report.versioning}, "
                                            f"object lock {report.object_lock}, {report.delete_probe}")
    return ProbeResult(name=f"storage {report.server}/{report.source}", server=report.server, kind="storage",
                       severity=CRITICAL if critical else WARNING, passed=report.ok, seconds=0.0, detail=detail)
