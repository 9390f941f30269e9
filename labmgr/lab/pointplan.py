"""Which dumps make a point in time: for each server, the newest good dump of each of its
sources taken at or before the time (``lab restore`` and ``--at last-clean`` both ask)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..dumps.errors import DumpError
from ..dumps.record import DumpRecord
from ..dumps.store import DumpStore
from ..spec import Environment
from ..spec.model import DumpSource
from ..sources.pitr import point_in_range
from ..timeparse import format_point


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


def plan_point(env: Environment, store: DumpStore, at: datetime) -> PointPlan:
    chosen: dict[str, list[tuple[DumpSource, DumpRecord]]] = {}
    for server in env.servers:
        for source in server.dumps:
            if source.pgbackrest is not None:       # any second of the stanza's range, or one line why not
                chosen.setdefault(server.name, []).append((source, point_in_range(store.catalog, server.name,
                                                                                  source, at)))
                continue
            record = store.catalog.newest_good_at(server.name, source.name, at)
            if record is None:
                raise DumpError(f"server {server.name} has no good {source.name} dump taken at or before "
                                f"{format_point(at)}", hint=f"'labmgr dumps list {env.name}.yaml --server "
                                f"{server.name}' shows what there is")
            chosen.setdefault(server.name, []).append((source, record))
    if not chosen:
        raise DumpError(f"environment {env.name} declares no dump sources", hint="add dumps: to its servers")
    return PointPlan(at, chosen)
