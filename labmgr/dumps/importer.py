"""Index dumps made by other tools: files named ``<server>--<source>--<YYYYMMDDTHHMMSSZ>.<ext>[.age]``.

Each new file is hashed once while it is linked or copied into the store. Every
file taken (or found identical to a stored dump) is remembered with its size and
mtime in ``scanned_files``, so re-running on an unchanged directory stats the
files and hashes nothing.
"""

from __future__ import annotations

import os
import stat as stat_mode
from dataclasses import dataclass, field
from pathlib import Path

from ..progress import SILENT, Reporter
from ..spec.model import DumpSource, Environment
from . import naming
from .errors import DumpError
from .record import DumpRecord
from .store import DumpStore, store_for
from .streams import file_chunks, sha256_file


@dataclass
class ImportResult:
    added: list[DumpRecord] = field(default_factory=list)
    skipped_unchanged: int = 0
    rejected: list[tuple[Path, str]] = field(default_factory=list)


def import_dir(env: Environment, directory: Path, reporter: Reporter = SILENT,
               store: DumpStore | None = None) -> ImportResult:
    """Bring the dumps of ``directory`` (searched recursively) into ``env``'s store."""
    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise DumpError(f"{directory} is not a directory")
    own = store is None
    store = store or store_for(env)
    try:
        if directory == store.root or store.root in directory.parents:
            raise DumpError(f"{directory} is inside the dump store {store.root}",
                            hint="import from the directory where the other tool writes its dumps")
        return _import(env, directory, store, reporter)
    finally:
        if own:
            store.close()


def _import(env: Environment, directory: Path, store: DumpStore, reporter: Reporter) -> ImportResult:
    sources = {(server.name, s.name): s for server in env.servers for s in server.dumps}
    recipients = env.dumps.encryption.recipients if env.dumps.encryption else None
    seen = store.catalog.scanned(str(directory) + os.sep)
    files = _candidates(directory, store.root)
    result = ImportResult()
    with reporter.step(f"import {directory.name}", total=len(files) or None) as step:
        for path, stat in files:
            step.advance()
            if seen.get(str(path)) == (stat.st_size, stat.st_mtime_ns):
                result.skipped_unchanged += 1
                continue
            name = naming.parse(path.name)
            reason = name if isinstance(name, str) else _mismatch(env, name, sources)
            if reason is None and stat.st_size == 0:
                reason = "empty file (a failed dump?)"
            if reason is None:
                reason = _take(store, path, stat, name, recipients, result)
            if reason:
                result.rejected.append((path, reason))
    return result


def _take(store: DumpStore, path: Path, stat: os.stat_result, name: naming.DumpName,
          recipients: list[str] | None, result: ImportResult) -> str | None:
    """Store one file; the reason it was not stored, or None."""
    existing = store.catalog.find(name.server, name.source, name.taken_at)
    try:
        if existing:
            if existing.size != stat.st_size or sha256_file(path)[0] != existing.sha256:
                return (f"a dump of {existing.label} is already stored (id {existing.id}, "
                        f"collected by {existing.collector}) and this file differs from it")
            store.catalog.remember_scanned(str(path), stat.st_size, stat.st_mtime_ns, existing.id)
            result.skipped_unchanged += 1
            return None
        if recipients and not name.encrypted:   # encryption at rest applies to imported plaintext too
            record = store.write(name.server, name.source, name.kind, name.taken_at, file_chunks(path),
                                 encrypt_to=recipients, collector="import")
        else:
            record = store.adopt(name.server, name.source, name.kind, name.taken_at, path,
                                 encrypted=name.encrypted)
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            store.delete(record)
            return "changed while being imported (is it still being written?); try again later"
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    except DumpError as exc:
        return str(exc)
    store.catalog.remember_scanned(str(path), stat.st_size, stat.st_mtime_ns, record.id)
    result.added.append(record)
    return None


def _mismatch(env: Environment, name: naming.DumpName, sources: dict[tuple[str, str], DumpSource]) -> str | None:
    """Why a well-formed name does not fit the spec, or None."""
    servers = [s.name for s in env.servers]
    if name.server not in servers:
        return f"environment {env.name} has no server '{name.server}' (servers: {', '.join(servers)})"
    source = sources.get((name.server, name.source))
    if source is None:
        known = ", ".join(s for (server, s) in sources if server == name.server) or "none"
        return f"server {name.server} has no dump source '{name.source}' (sources: {known})"
    if name.kind != source.kind:
        want = naming.EXTENSIONS[source.kind]
        return (f"extension .{name.ext} does not fit {name.server}/{name.source}, a {source.kind} dump "
                f"(expected .{want} or .{want}.age)")
    return None


def _candidates(directory: Path, store_root: Path) -> list[tuple[Path, os.stat_result]]:
    """Regular files below ``directory``, sorted; hidden files (partial writes) and labmgr's own
    bookkeeping (manifests, a catalog) are left out, and so is the store itself."""
    found = []
    for top, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and Path(top, d) != store_root)
        for file_name in names:
            if file_name.startswith(".") or file_name.startswith("catalog.sqlite"):
                continue
            if file_name.endswith(".json") and not isinstance(naming.parse(file_name[:-5]), str):
                continue   # a manifest written by labmgr next to its dump
            path = Path(top, file_name)
            try:
                stat = path.stat()
            except OSError:
                continue
            if stat_mode.S_ISREG(stat.st_mode):
                found.append((path, stat))
    return sorted(found)
