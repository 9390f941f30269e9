"""``--at last-clean``: the newest hour a lab can be trusted at.

An hour qualifies when every dump a restore to it would use has been scanned
(``labmgr dumps scan``) and no rule matched, and, if probes ever ran at a point
in that hour, the newest such run passed. Hours never probed are not held
against: the scan is what is known of them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ..dumps.errors import DumpError
from ..dumps.scans import ScanBook
from ..dumps.store import DumpStore
from ..history import history_for
from ..spec import Environment
from ..timeparse import format_point, parse_point
from .pointplan import plan_point

LAST_CLEAN = "last-clean"
HOUR = timedelta(hours=1)


def is_last_clean(text: str) -> bool:
    return " ".join(str(text).split()).lower() == LAST_CLEAN


def resolve_point(env: Environment, store: DumpStore, text: str) -> datetime:
    """``text`` as a point in time; ``last-clean`` is looked up in the scans and the probe history."""
    return last_clean_point(env, store) if is_last_clean(text) else parse_point(text)


def restorable_points(env: Environment, store: DumpStore, since: datetime | None = None,
                      until: datetime | None = None) -> list[datetime]:
    """For each hour in which every dump source has a dump (not known bad), the newest dump time of
    that hour, oldest first: the points a restore to that hour brings back exactly."""
    cells = [(server.name, source.name) for server in env.servers for source in server.dumps]
    newest, oldest = store.catalog.span()
    if newest is None or not cells:
        return []
    since = since or oldest
    until = until or newest
    hours = set(store.catalog.hours_with_all(cells, since.replace(minute=0, second=0, microsecond=0),
                                             until + timedelta(seconds=1)))
    pairs = " OR ".join("(server = ? AND source = ?)" for _ in cells)
    rows = store.catalog.db.execute(      # one grouped query: the newest usable dump time of each hour
        "SELECT taken_at / 3600, min(taken_at), max(taken_at) FROM dumps WHERE taken_at >= ? AND taken_at <= ? "
        f"AND state != 'bad' AND ({pairs}) GROUP BY taken_at / 3600 ORDER BY 1",
        (int(since.timestamp()), int(until.timestamp()), *[v for pair in cells for v in pair]))
    return [datetime.fromtimestamp(newest, timezone.utc) for hour, _, newest in rows
            if datetime.fromtimestamp(hour * 3600, timezone.utc) in hours]


def last_clean_point(env: Environment, store: DumpStore) -> datetime:

    points = restorable_points(env, store)
    if not points:
        raise DumpError(f"environment {env.name} has no hour with a dump of every source",
                        hint="collect or import dumps first")
    book = ScanBook(store.catalog.db)
    verdicts_by_hour = _probe_verdicts(env)
    reasons: dict[str, int] = {}
    for at in reversed(points):
        plan = plan_point(env, store, at)
        records = [record for pairs in plan.chosen.values() for _, record in pairs]
        scans = book.verdicts(r.identity_key for r in records)
        if any(r.identity_key not in scans for r in records):
            reasons["not scanned"] = reasons.get("not scanned", 0) + 1
        elif any(not scans[r.identity_key].clean for r in records):
            reasons["rules matched"] = reasons.get("rules matched", 0) + 1
        elif verdicts_by_hour.get(_hour(at), 0) != 0:
            reasons["probes failed"] = reasons.get("probes failed", 0) + 1
        else:
            return at
    why = ", ".join(f"{n} {reason}" for reason, n in reasons.items())
    raise DumpError(f"no clean hour in {env.name}'s dumps ({len(points)} hours: {why})",
                    hint="scan the dumps first: 'labmgr dumps scan ENV.yaml --rules RULES.yar'"
                    if "not scanned" in reasons else "restore an hour by its time and look at it")


def _probe_verdicts(env: Environment) -> dict[datetime, int]:
    """Hour -> exit code of the newest probe run at a point in that hour."""
    with history_for(env) as history:
        rows = history.db.execute("SELECT point, exit_code FROM history_probe_runs WHERE environment = ? "
                                  "AND point != '' ORDER BY id", (env.name,)).fetchall()
    verdicts = {}
    for point, code in rows:
        try:
            verdicts[_hour(parse_point(point))] = code
        except Exception:     # a hand-edited or foreign row: not evidence either way
            continue
    return verdicts


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


__all__ = ["LAST_CLEAN", "format_point", "is_last_clean", "last_clean_point", "resolve_point",
           "restorable_points"]
