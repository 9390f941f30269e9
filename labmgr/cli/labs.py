"""``labmgr lab ...``: isolated labs cloned from a snapshot: up, restore, list, show, extend, down, gc."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..spec import load_environment
from .arguments import SPEC
from .progress import RichReporter


@click.group()
def lab() -> None:
    """Isolated labs cloned from a snapshot."""


@lab.command("up")
@SPEC
@click.option("--name", default=None, help="lab name (default: ENV-N)")
@click.option("--snapshot", "snapshot_id", default=None, help="snapshot id (default: the newest)")
@click.option("--cold", is_flag=True, help="boot it instead of resuming the snapshot's warm template")
def lab_up_command(spec: Path, name: str | None, snapshot_id: str | None, cold: bool) -> None:
    """Clone the snapshot into an isolated lab: resumed from its warm template (made by a cold
    boot the first time), or booted with --cold."""
    from ..lab.up import lab_up

    env = load_environment(spec)
    record = lab_up(env, spec, name=name, snapshot_id=snapshot_id, reporter=RichReporter(), cold=cold)
    from ..lab.hypervisors import short

    timings = ", ".join(f"{k} {v:.1f} s" for k, v in record.timings.items())
    click.echo(f"lab {record.name} is up on {short(record.hypervisor)} ({len(record.servers)} servers, "
               f"snapshot {record.snapshot}; {timings})")


@lab.command("restore")
@click.argument("name")
@click.option("--at", "at", required=True, help="ISO 8601 time, 'latest', e.g. '3 hours ago', or 'last-clean' "
              "(the newest hour scanned clean whose probes passed)")
def lab_restore_command(name: str, at: str) -> None:
    """Put the lab's servers back to a point in time from the hourly dumps."""
    from ..lab.restore import lab_restore

    result = lab_restore(name, at, RichReporter())
    for dump, taken in result.plan.describe().items():
        click.echo(f"  {dump:<28} {taken}")
    skew = result.plan.skew.total_seconds()
    from ..timeparse import format_point

    shown = at if at == format_point(result.plan.at) else f"{format_point(result.plan.at)} (asked: {at})"
    click.echo(f"lab {name} is at {shown} (skew between servers' dumps: {skew / 60:.0f} min; "
               f"{result.seconds.get('restore', 0):.1f} s)")


@lab.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--hypervisor", "uris", multiple=True, help="also look on this libvirt URI (repeatable)")
def lab_list(as_json: bool, uris: tuple[str, ...]) -> None:
    """List every lab on every hypervisor labmgr knows, with its state and hypervisor."""
    from ..lab.hypervisors import short
    from ..lab.inventory import list_labs

    unreachable: list[tuple[str, str]] = []
    labs = list_labs(["qemu:///system", *uris], unreachable)
    for uri, why in unreachable:        # a hypervisor only remembered, with no lab recorded on it, is skipped quietly
        if uri in uris or any(s.hypervisor == uri for s in labs):
            click.echo(f"labmgr: warning: hypervisor {short(uri)} not reached, its labs are shown from their "
                       f"records: {why}", err=True)
    if as_json:
        click.echo(json.dumps([_status_dict(s) for s in labs], indent=2))
        return
    if not labs:
        click.echo("no labs")
    for s in labs:
        running = sum(1 for state in s.domains.values() if state == "running")
        click.echo(f"{s.name:<24} {s.state:<9} {s.environment:<16} {running}/{len(s.domains)} running  "
                   f"snapshot {s.snapshot or '?'}  {short(s.hypervisor)}")


@lab.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def lab_show(name: str, as_json: bool) -> None:
    """Show one lab: its servers, networks and bridges."""
    from ..lab.hypervisors import short
    from ..lab.inventory import point_of, show_lab

    s = show_lab(name)
    if as_json:
        click.echo(json.dumps(_status_dict(s), indent=2))
        return
    click.echo(f"lab {s.name}: {s.state}, environment {s.environment}, snapshot {s.snapshot}, "
               f"on {short(s.hypervisor)}, created {s.created_at}")
    if s.record:
        for spec_net, network in s.record.networks.items():
            click.echo(f"  network {spec_net}: {network.name} (bridge {network.bridge}, no host address)")
        for server, info in s.record.servers.items():
            click.echo(f"  server {server}: {info.hostname}, domain {info.domain} "
                       f"({s.domains.get(info.domain, 'missing')})")
        point = point_of(s.record)
        if point["at"]:
            click.echo(f"  point in time: {point['at']} since {point['since']} (asked: {point['requested']}; "
                       f"skew between servers {point['skew_seconds']:g} s)")
            for dump, taken in point["dumps"].items():
                click.echo(f"    {dump}: dump of {taken}")
        else:
            click.echo(f"  point in time: clean since {point['since']} ({point['how']})")
        if s.record.error:
            click.echo(f"  error: {s.record.error}")
        if s.record.state == "up":
            from ..access.console import access_lines
            from ..access.share.state import active_shares
            from .share import share_lines

            for line in access_lines(s.record) + share_lines(active_shares(s.name)):
                click.echo(f"  {line}")
    else:
        for domain, state in s.domains.items():
            click.echo(f"  domain {domain} ({state})")


@lab.command("extend")
@click.argument("name")
@click.option("--by", "by", default="8h", show_default=True, help="hours or days, e.g. 8h or 2d")
def lab_extend_command(name: str, by: str) -> None:
    """Keep a lab longer: add to its lease (lab gc --expired removes it after)."""
    from ..lab.lease import extend_lease, lease_hours

    record = extend_lease(name, lease_hours(by))
    click.echo(f"lab {name} is kept until {record.lease_until}")


@lab.command("down")
@click.argument("name")
def lab_down_command(name: str) -> None:
    """Remove a lab: its domains, networks, overlays and files."""
    from ..lab.teardown import lab_down

    removed = lab_down(name, RichReporter(), hypervisor_uri="qemu:///system")
    shares = f", {len(removed.shares)} shares ended" if removed.shares else ""
    click.echo(f"lab {name} removed ({len(removed.domains)} domains, {len(removed.networks)} networks{shares})")


@lab.command("gc")
@click.option("--hypervisor", "uris", multiple=True, default=["qemu:///system"], show_default=True,
              help="also look on this libvirt URI (repeatable)")
@click.option("--expired", is_flag=True, help="also remove labs whose lease has ended")
def lab_gc_command(uris: tuple[str, ...], expired: bool) -> None:
    """Remove labs whose records are gone or whose lab up never finished."""
    from ..errors import LabError
    from ..lab import records
    from ..lab.hypervisors import short
    from ..lab.teardown import lab_gc

    unreachable: list[tuple[str, str]] = []
    removed = lab_gc(list(uris), RichReporter(), expired=expired, unreachable=unreachable)
    from ..lab.template import collect_templates

    for what in collect_templates():
        click.echo(f"removed {what}")
    from ..sources.pgscratch import sweep

    swept = sweep()
    for folder in swept:
        click.echo(f"removed {folder} (a killed pgBackRest restore's)")
    for r in removed:
        door = ", its door" if r.door else ""
        click.echo(f"removed {r.lab} ({len(r.domains)} domains, {len(r.networks)} networks{door})")
    if not removed and not swept:
        click.echo("nothing to collect")
    # a hypervisor that labs are recorded on must be reached; one only remembered is just noted
    with_labs = {r.hypervisor for r in records.all_records()}
    for uri, why in unreachable:
        if uri in with_labs:
            raise LabError(f"hypervisor {short(uri)} was not reached, its labs were not collected: {why}")


def _status_dict(s) -> dict:
    from ..lab.inventory import point_of

    return {"name": s.name, "environment": s.environment, "hypervisor": s.hypervisor, "state": s.state,
            "snapshot": s.snapshot, "created_at": s.created_at, "domains": s.domains, "networks": s.networks,
            "bridges": {n: v.bridge for n, v in s.record.networks.items()} if s.record else {},
            "timings": s.record.timings if s.record else {},
            "point": point_of(s.record) if s.record else None}
