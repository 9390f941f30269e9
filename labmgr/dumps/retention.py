"""Which dumps to keep: every dump of the last ``hourly_hours``, then the newest of each UTC day
for ``daily_days``; never the newest usable dump of a server/source.

``plan_prune`` is pure (records in, records to delete out) so the rules are
tested without files; ``prune`` applies a plan to a store.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterable

from ..progress import SILENT, Reporter
from ..spec.model import Retention
from ..timeparse import utc
from .record import DumpRecord
from .store import DumpStore


def plan_prune(records: Iterable[DumpRecord], retention: Retention, now: datetime) -> list[DumpRecord]:
    """The records ``retention`` deletes at ``now``, oldest first."""
    now = utc(now)
    hourly_cutoff = now - timedelta(hours=retention.hourly_hours)
    daily_cutoff = now - timedelta(days=retention.daily_days)
    groups: dict[tuple[str, str], list[DumpRecord]] = {}
    for record in records:
        groups.setdefault((record.server, record.source), []).append(record)

    doomed: list[DumpRecord] = []
    for group in groups.values():
        group.sort(key=lambda r: r.taken_at, reverse=True)
        keep = {id(r) for r in group if r.taken_at > hourly_cutoff}
        # the newest usable dump, and the newest verified one, survive any rule
        for protected in (_newest(group, lambda r: r.state != "bad"), _newest(group, lambda r: r.state == "good")):
            if protected is not None:
                keep.add(id(protected))
        newest_of_day: dict = {}
        for r in group:   # newest first, so the first usable dump seen for a day is its newest
            if r.state != "bad" and r.taken_at > daily_cutoff:
                newest_of_day.setdefault(utc(r.taken_at).date(), r)
        keep |= {id(r) for r in newest_of_day.values()}
        doomed += [r for r in group if id(r) not in keep]
    return sorted(doomed, key=lambda r: (r.taken_at, r.server, r.source))


def _newest(newest_first: list[DumpRecord], wanted) -> DumpRecord | None:
    return next((r for r in newest_first if wanted(r)), None)


def prune(store: DumpStore, retention: Retention, now: datetime | None = None,
          reporter: Reporter = SILENT, dry_run: bool = False) -> list[DumpRecord]:
    """Delete what ``plan_prune`` says (files, manifests, catalog rows); return the deleted records."""
    doomed = plan_prune(store.catalog.list(), retention, now or datetime.now(timezone.utc))
    if dry_run:
        return doomed
    with reporter.step(f"prune {len(doomed)} dumps", total=len(doomed) or None) as step:
        for record in doomed:
            store.delete(record)
            step.advance()
    return doomed
