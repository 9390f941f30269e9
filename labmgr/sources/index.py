"""`labmgr dumps index ENV.yaml`: each backup source's location listed (never copied) and every
backup whose name fits the template put into the catalog, where the timeline and ``lab restore``
find it like a collected dump.

A backup already indexed and unchanged (same size and storage checksum) is left as
it is; one replaced at the location gets a new row; one gone from the location is
marked bad ("gone"), so no restore picks it and the timeline shows the hole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..dumps.record import DumpRecord
from ..dumps.store import DumpStore, store_for
from ..progress import SILENT, Reporter
from ..spec.model import DumpSource, Environment
from .where import location_of
from .template import NameTemplate

GONE = "gone from its location"


@dataclass
class SourceIndex:
    server: str
    source: str
    location: str
    matched: int = 0
    added: list[DumpRecord] = field(default_factory=list)
    unchanged: int = 0
    gone: list[DumpRecord] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)     # (name, why)
    range: object | None = None       # a pgBackRest stanza's restorable range (pitr.IndexedRange)


def backup_sources(env: Environment) -> list[tuple[str, DumpSource]]:
    return [(server.name, source) for server in env.servers for source in server.dumps if source.backup]


def name_template(backup) -> NameTemplate | None:
    """The template a backup's name must fit; None for a restic repository (every snapshot is a point)."""
    return NameTemplate(backup.name, backup.timezone) if backup.name is not None else None


def index(env: Environment, reporter: Reporter = SILENT, store: DumpStore | None = None,
          cache: bool = False) -> list[SourceIndex]:
    """Index every backup source; with ``cache``, also copy each backup not yet cached into the store."""
    own = store is None
    store = store or store_for(env)
    try:
        results = []
        sources = backup_sources(env)
        stanzas = [(server.name, source) for server in env.servers for source in server.dumps if source.pgbackrest]
        with reporter.step("index backups", total=len(sources) + len(stanzas) or None) as step:
            for server, source in sources:
                results.append(_index_source(store, server, source))
                step.advance()
            for server, source in stanzas:
                results.append(_index_stanza(store, server, source))
                step.advance()
        if cache:
            _cache_all(env, store, reporter)
        return results
    finally:
        if own:
            store.close()


def _cache_all(env: Environment, store: DumpStore, reporter: Reporter) -> None:
    from . import cache
    # a restic snapshot is read with 'restic dump' at each restore, never copied
    backups = {(server, source.name): source.backup for server, source in backup_sources(env)
               if source.backup.restic is None}
    records = [r for r in store.catalog.list() if r.located and r.state != "bad"
               and (r.server, r.source) in backups]
    with reporter.step("cache backups", total=sum(r.size for r in records) or None) as step:
        for record in records:
            cache.fill(store.root, record, backups[record.server, record.source])
            step.advance(record.size)


def _index_source(store: DumpStore, server: str, source: DumpSource) -> SourceIndex:
    backup = source.backup
    location = location_of(backup)
    template = name_template(backup)
    compression, cipher = backup.codecs
    result = SourceIndex(server, source.name, location.describe)
    known = {r.origin: r for r in store.catalog.list(server, source.name) if r.located}
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for found in location.list(template.listing_prefix if template else ""):
        when = template.match(found.name) if template else True
        if when is False:
            continue
        result.matched += 1
        taken_at = (found.modified if when is True else when).replace(microsecond=0)
        origin = location.origin(found.name)
        old = known.pop(origin, None)
        if old is not None and (old.size, old.checksum, old.taken_at) == (found.size, found.checksum, taken_at) \
                and old.note != GONE:
            result.unchanged += 1
            continue
        if old is not None:             # replaced in place (or back again): indexed anew
            store.catalog.delete(old.id)
        clash = store.catalog.find(server, source.name, taken_at)
        if clash is not None:
            result.ignored.append((found.name, f"{clash.label} is already in the catalog "
                                               f"({clash.origin or clash.path.name})"))
            continue
        if found.size == 0 and location.sizes_known:
            result.ignored.append((found.name, "empty (a failed backup?)"))
            continue
        result.added.append(store.catalog.add(DumpRecord(
            None, server, source.name, source.kind, taken_at, found.size, "", None, cipher != "none",
            Path(origin), collector="index", collected_at=now, origin=origin, compression=compression,
            cipher=cipher, checksum=found.checksum)))
    for record in known.values():
        if record.note != GONE:
            store.catalog.mark(record.id, "bad", GONE)
            result.gone.append(record)
    return result


def _index_stanza(store: DumpStore, server: str, source: DumpSource) -> SourceIndex:
    """A pgBackRest stanza: its restorable range, from ``pgbackrest info`` and the archived WAL."""
    import tempfile

    from . import pitr
    from .pgbackrest import Repository

    stanza = source.pgbackrest
    with tempfile.TemporaryDirectory(prefix="labmgr-pgbackrest-") as scratch:
        found = Repository(stanza, Path(scratch)).restorable_range()
    pitr.record_range(store.catalog, server, source.name, stanza.describe, found)
    result = SourceIndex(server, source.name, stanza.describe, matched=len(found.backups))
    result.range = pitr.ranges(store.catalog, server, source.name)[0]
    return result
