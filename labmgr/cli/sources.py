"""``labmgr dumps index`` and ``labmgr dumps check-storage``: a team's own backups, where they are."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..spec import load_environment
from ..timeparse import format_point
from .arguments import SPEC
from .dumps import dumps
from .progress import RichReporter


@dumps.command("index")
@SPEC
@click.option("--cache", is_flag=True, help="also keep a local copy of each backup in the store")
def dumps_index(spec: Path, cache: bool) -> int:
    """List every backup source's location (nothing copied, nothing written there) and put each
    backup whose name fits its template into the catalog. Exit status 1 when a backup was ignored."""
    from ..sources.index import index

    results = index(load_environment(spec), RichReporter(), cache=cache)
    for r in results:
        if r.range is not None:
            span = r.range.range
            click.echo(f"{r.server}/{r.source} at {r.location}: {r.matched} backups, restorable to any second "
                       f"from {format_point(span.start)} to {format_point(span.end)} (PostgreSQL {span.major})")
            continue
        click.echo(f"{r.server}/{r.source} at {r.location}: {r.matched} backups, {len(r.added)} new, "
                   f"{r.unchanged} unchanged, {len(r.gone)} gone, {len(r.ignored)} ignored")
        for name, why in r.ignored:
            click.echo(f"  ignored {name}: {why}", err=True)
        for record in r.gone:
            click.echo(f"  gone: {record.label} ({record.origin}); marked bad", err=True)
    return 1 if any(r.ignored for r in results) else 0


@dumps.command("check-storage")
@SPEC
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def dumps_check_storage(spec: Path, as_json: bool) -> int:
    """For each backup location: the newest backup's age, gaps, versioning and object lock, and
    whether the credentials could delete. Exit status 1 when any location has a problem."""
    from ..sources.storagecheck import check_storage

    reports = check_storage(load_environment(spec), reporter=RichReporter())
    if as_json:
        click.echo(json.dumps([as_dict(r) for r in reports], indent=2))
    for r in reports if not as_json else ():
        newest = f"newest {format_point(r.newest)} ({int(r.age.total_seconds() // 60)} min ago)" if r.newest else "none"
        click.echo(f"{r.server}/{r.source} at {r.location}: {r.backups} backups, {newest}")
        click.echo(f"  versioning: {r.versioning}; object lock: {r.object_lock}; delete: {r.delete_probe}")
        for after, before, missing in r.gaps:
            click.echo(f"  gap: {missing} missing between {format_point(after)} and {format_point(before)}")
        for problem in r.problems:
            click.echo(f"  problem: {problem}")
    return 1 if any(r.problems for r in reports) else 0


def as_dict(r) -> dict:
    return {"server": r.server, "source": r.source, "location": r.location, "backups": r.backups,
            "newest": format_point(r.newest) if r.newest else None,
            "age_seconds": r.age.total_seconds() if r.age else None,
            "interval_seconds": r.interval.total_seconds(),
            "gaps": [{"after": format_point(a), "before": format_point(b), "missing": m} for a, b, m in r.gaps],
            "versioning": r.versioning, "object_lock": r.object_lock, "can_delete": r.can_delete,
            "delete_probe": r.delete_probe, "problems": r.problems}
