"""Re-hash every stored dump against the catalog and mark it good or bad.

Only stored bytes are checked (no identity needed): a dump whose bytes match
the checksum taken when it was stored is exactly what was collected.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..progress import SILENT, Reporter
from ..spec.model import Environment
from .record import DumpRecord
from .store import DumpStore, store_for
from .streams import sha256_file

MISMATCH = "sha256 mismatch (file was changed or truncated)"
SIZE_MISMATCH = "sha256 mismatch (file was changed or truncated: {size} bytes, {expected} stored)"


def verify(target: Environment | DumpStore, reporter: Reporter = SILENT) -> list[DumpRecord]:
    """Check every dump of ``target``; return the bad ones, each with its reason in ``note``."""
    store = store_for(target) if isinstance(target, Environment) else target
    try:
        return _verify(store, reporter)
    finally:
        if store is not target:
            store.close()


def _verify(store: DumpStore, reporter: Reporter) -> list[DumpRecord]:
    # a team's backup where it is has no stored bytes to re-hash: its storage checks it at each read
    records = [r for r in store.catalog.list() if not r.located]
    bad: list[DumpRecord] = []
    with reporter.step(f"verify {len(records)} dumps", total=sum(r.size for r in records) or None) as step:
        for record in records:
            problem = check(record, step.advance)
            now = datetime.now(timezone.utc).replace(microsecond=0)
            store.catalog.mark(record.id, "bad" if problem else "good", problem or "", at=now)
            record.state, record.note, record.verified_at = ("bad" if problem else "good"), problem or "", now
            if problem:
                bad.append(record)
    return bad


def check(record: DumpRecord, progress=None) -> str | None:
    """Why ``record``'s file is not the dump that was stored, or None when it is."""
    try:
        sha256, size = sha256_file(record.path, progress)
    except FileNotFoundError:
        return f"file is missing ({record.path})"
    except OSError as exc:
        return f"cannot read {record.path}: {exc.strerror}"
    if sha256 != record.sha256:
        return MISMATCH if size == record.size else SIZE_MISMATCH.format(size=size, expected=record.size)
    return None
