"""labmgr's commands. Each one parses its arguments, calls the core, prints."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import click
from rich.console import Console

from ..spec import load_environment
from . import access, share
from .dumps import dumps
from .format import human_size
from .progress import RichReporter
from .recovering import recover_first

SPEC = click.argument("spec", type=click.Path(path_type=Path, dir_okay=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(package_name="labmgr")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Isolated replica labs of libvirt production environments. Without a command: the TUI."""
    recover_first()
    if ctx.invoked_subcommand is None:
        if not sys.stdout.isatty():       # a pipe or a script gets the help, not a screen
            click.echo(ctx.get_help())
            return
        from ..tui import run_tui

        run_tui()


@cli.command()
@click.argument("spec", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--lab", "lab_name", default=None, help="open this lab's timeline")
@click.option("--probes", "probes_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="the probe file run after each restore and by 'r' on Probes (docs/probes.md)")
def tui(spec: Path | None, lab_name: str | None, probes_file: Path | None) -> None:
    """The terminal UI: labs, the dump timeline, restores, probes, servers, sign-off."""
    from ..tui import run_tui

    run_tui(spec, lab_name, probes_file)


# doctor ----------------------------------------------------------------------
@cli.command()
@click.option("--hypervisor", "uri", default=None, help="libvirt URI to check (default: the spec's, or qemu:///system)")
@click.option("--spec", type=click.Path(path_type=Path, dir_okay=False), default=None, help="an environment spec")
def doctor(uri: str | None, spec: Path | None) -> int:
    """Check everything labmgr needs on this machine, and say how to fix what is wrong."""
    from ..doctor import run_checks

    env = load_environment(spec) if spec else None
    checks = run_checks(uri or (env.hypervisor if env else "qemu:///system"), env)
    out = Console(highlight=False)
    for check in checks:
        mark = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}[check.status]
        out.print(f"{mark} {check.name}: {check.detail}", soft_wrap=True)
        if check.fix and check.status != "ok":
            out.print(f"     fix: {check.fix}", soft_wrap=True)
    return 1 if any(c.status == "fail" for c in checks) else 0


# images ----------------------------------------------------------------------
@cli.group()
def image() -> None:
    """Guest images built from Debian packages."""


@image.command("build")
@click.argument("recipe", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--force", is_flag=True, help="rebuild even if cached")
def image_build(recipe: Path, force: bool) -> None:
    """Build (or find in the cache) the qcow2 image of RECIPE."""
    from ..image import build_image, load_recipe

    built = build_image(load_recipe(recipe), RichReporter(), force=force)
    click.echo(f"{'cached' if built.cached else 'built'}: {built.disk}")


# snapshots -------------------------------------------------------------------
@cli.group()
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


# labs ------------------------------------------------------------------------
@cli.group()
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
    from ..lab.inventory import show_lab

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
        if s.record.point:
            point = s.record.point
            click.echo(f"  point in time: {point['at']} (asked: {point['requested']}, restored {point['restored_at']})")
            for dump, taken in point["dumps"].items():
                click.echo(f"    {dump}: dump of {taken}")
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
    for r in removed:
        door = ", its door" if r.door else ""
        click.echo(f"removed {r.lab} ({len(r.domains)} domains, {len(r.networks)} networks{door})")
    if not removed:
        click.echo("nothing to collect")
    # a hypervisor that labs are recorded on must be reached; one only remembered is just noted
    with_labs = {r.hypervisor for r in records.all_records()}
    for uri, why in unreachable:
        if uri in with_labs:
            raise LabError(f"hypervisor {short(uri)} was not reached, its labs were not collected: {why}")


# probes ----------------------------------------------------------------------
@cli.command()
@click.argument("name")
@click.option("--probes", "probes_file", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="the probe file (docs/probes.md)")
@click.option("--only", multiple=True, help="run only this probe (repeatable)")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="also write the results as JSON")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="also write JUnit XML (Jenkins, GitLab)")
@click.option("--mutate", is_flag=True, help="damage the lab in the ways each probe should catch, probe, revert; "
              "report caught/applied and the damages nothing caught (docs/probes.md)")
def probe(name: str, probes_file: Path, only: tuple[str, ...], json_path: Path | None,
          junit_path: Path | None, mutate: bool) -> int:
    """Run the probes in a lab; exit 0 all passed, 1 a probe failed, 2 they could not run."""
    if mutate:
        from .mutate import probe_mutate

        return probe_mutate(name, probes_file, list(only) or None, json_path)
    from ..lab.probing import probe_lab
    from ..notify import write_junit
    from ..probes.report import summary_lines, to_json

    summary = probe_lab(name, probes_file, list(only) or None)
    for line in summary_lines(summary.results):
        click.echo(line)
    if json_path:
        json_path.write_text(to_json(summary.results, lab=name, point=summary.point))
    if junit_path:
        write_junit(junit_path, summary)
    return summary.exit_code


# drills ----------------------------------------------------------------------
@cli.command()
@click.argument("plan_file", metavar="PLAN", type=click.Path(path_type=Path, dir_okay=False))
def run(plan_file: Path) -> int:
    """Run a whole drill unattended; exit 0 passed, 1 a probe failed or a dump was bad, 2 it could not run."""
    from ..drill import load_plan, run_plan
    from ..probes.report import summary_lines

    summary, warnings = run_plan(load_plan(plan_file), RichReporter())
    for line in summary_lines(summary.results) if summary.results else []:
        click.echo(line)
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in summary.stages.items())
    click.echo(f"drill of {summary.environment} in lab {summary.lab or '-'}: exit {summary.exit_code}"
               + (f"; stages: {stages}" if stages else ""))
    for warning in warnings:
        click.echo(f"labmgr: warning: {warning}", err=True)
    if summary.error:
        click.echo(f"labmgr: error: {summary.error}", err=True)
    return summary.exit_code


@cli.command()
@SPEC
def history(spec: Path) -> int:
    """The trend of drills: RTO, RPO and pass rate; exit 1 when the last good drill is too old."""
    from ..history import drill_trend, history_for

    env = load_environment(spec)
    with history_for(env) as store:
        drills = store.drills(env.name)
    if not drills:
        click.echo(f"no drills of {env.name} yet ('labmgr run PLAN.yaml')")
        return 1
    click.echo(f"{'started':<21} {'point':<18} {'exit':>4} {'RTO s':>8} {'RPO':>8} {'probes':>9}")
    for d in drills:
        rpo = f"{d.rpo_seconds / 60:.0f} min" if d.rpo_seconds is not None else "-"
        click.echo(f"{d.started_at:<21} {d.point or '-':<18} {d.exit_code:>4} {d.rto_seconds:>8.1f} {rpo:>8} "
                   f"{d.passed:>4}/{d.probes:<4}")
    rate, mean_rto, warning = drill_trend(drills, env.drills.max_age_hours, datetime.now(timezone.utc))
    click.echo(f"{len(drills)} drills, {rate:.0f}% passed; mean RTO {mean_rto:.1f} s")
    if warning:
        click.echo(f"labmgr: warning: {env.name}: {warning}", err=True)
        return 1
    return 0


# evidence --------------------------------------------------------------------
@cli.command()
@click.argument("name")
@click.option("--user", required=True, help="who checked")
@click.option("--note", required=True, help='what was checked and found, e.g. "Q3 invoices present"')
def signoff(name: str, user: str, note: str) -> None:
    """Record a user's sign-off on what they checked in a lab (evidence for the report)."""
    from ..lab.evidence import sign_off

    recorded = sign_off(name, user, note)
    click.echo(f"signed off by {recorded.user} at {recorded.at} (lab {name} at {recorded.point or 'clean clone'})")


@cli.command()
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="write here instead of standard output")
@click.option("--spec", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="the environment spec (needed once the lab is down)")
def report(name: str, fmt: str, output: Path | None, spec: Path | None) -> None:
    """Write the DR-day report of a lab: points restored, stage times, probes, sign-offs."""
    from ..history import now
    from ..lab.evidence import evidence_for
    from ..report import render_report

    text = render_report(evidence_for(name, spec), fmt, now())
    if output:
        output.write_text(text)
        click.echo(f"report written to {output}")
    else:
        click.echo(text, nl=False)


# dumps -----------------------------------------------------------------------
cli.add_command(dumps)
cli.add_command(access.console)
cli.add_command(access.ssh)
cli.add_command(access.forward)
cli.add_command(share.share)
cli.add_command(share.shares)
cli.add_command(share.unshare)


@dumps.command("collect")
@SPEC
@click.option("--server", default=None, help="only this server's sources")
@click.option("--taken-at", default=None, help="stamp the dumps with this time instead of now (simulations)")
def dumps_collect(spec: Path, server: str | None, taken_at: str | None) -> int:
    """Take every dump of the environment now and store it (run hourly)."""
    from ..dumps.hourly import collect
    from ..timeparse import parse_point

    env = load_environment(spec)
    result = collect(env, server, parse_point(taken_at) if taken_at else None, RichReporter())
    for record in result.stored:
        click.echo(f"stored {record.label}: {human_size(record.size)}{' (encrypted)' if record.encrypted else ''}")
    for name, error in result.failed:
        click.echo(f"labmgr: error: {error}", err=True)
    return 1 if result.failed else 0


# demo ------------------------------------------------------------------------
@cli.group(invoke_without_command=True)
@click.pass_context
def demo(ctx: click.Context) -> None:
    """A small real production on this machine, a day of hourly dumps, and the drill on it (docs/demo.md)."""
    if ctx.invoked_subcommand is None:
        from ..demo.run import run_demo

        run_demo(RichReporter(), click.echo)


@demo.command("down")
def demo_down_command() -> None:
    """Remove everything the demo made but the cached guest image."""
    from ..demo.down import demo_down

    demo_down(RichReporter(), click.echo)


def _status_dict(s) -> dict:
    return {"name": s.name, "environment": s.environment, "hypervisor": s.hypervisor, "state": s.state,
            "snapshot": s.snapshot, "created_at": s.created_at, "domains": s.domains, "networks": s.networks,
            "bridges": {n: v.bridge for n, v in s.record.networks.items()} if s.record else {},
            "timings": s.record.timings if s.record else {}}
