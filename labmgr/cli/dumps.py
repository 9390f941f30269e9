"""``labmgr dumps ...``: parse arguments, call the dump store, print."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..spec import load_environment
from ..timeparse import format_point, parse_point
from .arguments import SPEC
from .format import human_size
from .progress import RichReporter


@click.group()
def dumps() -> None:
    """Hourly dumps of production's databases and files: store, import, verify, prune."""


@dumps.command("import")
@SPEC
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
def dumps_import(spec: Path, directory: Path) -> int:
    """Index dumps another tool wrote to DIRECTORY (named SERVER--SOURCE--YYYYMMDDTHHMMSSZ.EXT[.age])."""
    from ..dumps import import_dir

    result = import_dir(load_environment(spec), directory, RichReporter())
    for path, reason in result.rejected:
        click.echo(f"rejected {path}: {reason}", err=True)
    click.echo(f"{len(result.added)} added, {result.skipped_unchanged} unchanged, {len(result.rejected)} rejected")
    return 1 if result.rejected else 0


@dumps.command("list")
@SPEC
@click.option("--server", default=None, help="only this server's dumps")
@click.option("--source", default=None, help="only this dump source")
@click.option("--since", default=None, help="e.g. '2026-11-21T08:00', '3 hours ago', 'yesterday'")
@click.option("--until", default=None, help="same forms as --since")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def dumps_list(spec: Path, server: str | None, source: str | None, since: str | None, until: str | None,
               as_json: bool) -> None:
    """List stored dumps, newest first."""
    from ..dumps import store_for

    env = load_environment(spec)
    if server:
        env.server(server)   # an unknown name is an error naming the known ones
    from ..sources.pitr import ranges

    with store_for(env) as store:
        records = store.catalog.list(server, source, since and parse_point(since), until and parse_point(until))
        spans = ranges(store.catalog, server, source)
    if as_json:
        click.echo(json.dumps([_as_dict(r) for r in records] + [_range_dict(r) for r in spans], indent=2))
        return
    if not records and not spans:
        click.echo(f"no dumps of {env.name} match")
    for r in spans:          # a pgBackRest stanza: every second of the range, not hourly points
        click.echo(f"{'range':>6}  {format_point(r.range.start)} to {format_point(r.range.end)}  "
                   f"{r.server + '/' + r.source:<24} postgres {len(r.range.backups)} backups  {r.origin}")
    for r in records:
        click.echo(f"{r.id:>6}  {format_point(r.taken_at):<20} {r.server + '/' + r.source:<24} {r.kind:<8} "
                   f"{human_size(r.size) if r.size or not r.located else '?':>10}  {r.state:<10} {r.encryption if r.encrypted else '   ':<3}  {r.collector}"
                   + (f"  {r.note}" if r.note else ""))


@dumps.command("verify")
@SPEC
def dumps_verify(spec: Path) -> int:
    """Re-hash every stored dump; mark each good or bad. Exit status 1 when any is bad."""
    from ..dumps import verify

    bad = verify(load_environment(spec), RichReporter())
    for record in bad:
        click.echo(f"bad: {record.label}: {record.note}")
    click.echo(f"{len(bad)} bad dumps" if bad else "every dump matches its checksum")
    return 1 if bad else 0


@dumps.command("prune")
@SPEC
@click.option("--dry-run", is_flag=True, help="only say what would be deleted")
def dumps_prune(spec: Path, dry_run: bool) -> None:
    """Delete dumps the spec's retention no longer keeps."""
    from ..dumps import prune, store_for

    env = load_environment(spec)
    with store_for(env) as store:
        doomed = prune(store, env.dumps.retention, reporter=RichReporter(), dry_run=dry_run)
    for record in doomed:
        click.echo(f"{'would delete' if dry_run else 'deleted'} {record.label} ({record.path.name})")
    click.echo(f"{len(doomed)} dumps {'to delete' if dry_run else 'deleted'}")


@dumps.command("collect")
@SPEC
@click.option("--server", default=None, help="only this server's sources")
@click.option("--taken-at", default=None, help="stamp the dumps with this time instead of now (simulations)")
def dumps_collect(spec: Path, server: str | None, taken_at: str | None) -> int:
    """Take every dump of the environment now and store it (run hourly)."""
    from ..dumps.hourly import collect

    env = load_environment(spec)
    result = collect(env, server, parse_point(taken_at) if taken_at else None, RichReporter())
    for record in result.stored:
        click.echo(f"stored {record.label}: {human_size(record.size)}{' (encrypted)' if record.encrypted else ''}")
    for name, error in result.failed:
        click.echo(f"labmgr: error: {error}", err=True)
    return 1 if result.failed else 0


def _as_dict(r) -> dict:
    from ..dumps.record import manifest

    verified = r.verified_at.strftime("%Y-%m-%dT%H:%M:%SZ") if r.verified_at else None
    return {"id": r.id, **manifest(r), "path": str(r.path), "origin": r.origin, "state": r.state, "verified_at": verified,
            "note": r.note}


def _range_dict(r) -> dict:
    return {"server": r.server, "source": r.source, "kind": "postgres", "origin": r.origin,
            "range": {"start": format_point(r.range.start), "end": format_point(r.range.end)},
            "major": r.range.major, "backups": r.range.backups, "archive": list(r.range.archive),
            "indexed_at": format_point(r.indexed_at)}
