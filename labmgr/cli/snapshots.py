"""``labmgr snapshot ...``: point-in-time copies of production, and their warm templates."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..spec import load_environment
from .arguments import SPEC
from .format import human_size
from .progress import RichReporter


@click.group()
def snapshot() -> None:
    """Point-in-time copies of production."""


@snapshot.command("capture")
@SPEC
@click.option("--warm", is_flag=True, help="also make its warm template now (labs then resume, not boot)")
def snapshot_capture(spec: Path, warm: bool) -> None:
    """Copy every production server's disks and definition, without changing production."""
    from ..snapshot import capture

    env = load_environment(spec)
    taken = capture(env, RichReporter())
    click.echo(f"snapshot {taken.id} of {env.name}: {len(taken.servers)} servers, "
               f"{human_size(taken.size())}, {taken.seconds:.1f} s")
    if warm:
        from ..lab.template import warm as make_warm

        made = make_warm(env, spec, taken, RichReporter())
        click.echo(f"template {made.key}: {human_size(made.size)}, {made.seconds:.1f} s")


@snapshot.command("list")
@SPEC
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def snapshot_list(spec: Path, as_json: bool) -> None:
    """List the snapshots of an environment, oldest first."""
    from ..snapshot import list_snapshots

    env = load_environment(spec)
    snapshots = list_snapshots(env.name)
    if as_json:
        from ..lab.template import describe_templates

        click.echo(json.dumps([{**json.loads(s.to_json()), "templates": describe_templates(s)} for s in snapshots],
                              indent=2))
        return
    if not snapshots:
        click.echo(f"no snapshots of {env.name} yet ('labmgr snapshot capture {spec}')")
    from ..lab.template import template_sizes

    for s in snapshots:
        methods = ", ".join(f"{n}:{c.method}{'+frozen' if c.frozen else ''}" for n, c in s.servers.items())
        warm = f"  template {human_size(template_sizes(s))}" if template_sizes(s) else ""
        click.echo(f"{s.id}  {s.taken_at}  {human_size(s.size()):>9}  {methods}{warm}")


@snapshot.command("delete")
@SPEC
@click.argument("snapshot_id")
def snapshot_delete(spec: Path, snapshot_id: str) -> None:
    """Remove a snapshot no lab is cloned from."""
    from ..snapshot import delete_snapshot

    env = load_environment(spec)
    removed = delete_snapshot(env.name, snapshot_id)
    click.echo(f"snapshot {removed.id} of {env.name} removed ({human_size(removed.size())})")
