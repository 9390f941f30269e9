"""``labmgr run``, ``labmgr history``: unattended drills and their trend."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from ..spec import load_environment
from .arguments import SPEC
from .progress import RichReporter


@click.command()
@click.argument("plan_file", metavar="PLAN", type=click.Path(path_type=Path, dir_okay=False))
def run(plan_file: Path) -> int:
    """Run a whole drill unattended; exit 0 passed, 1 a probe failed or a dump was bad, 2 it could not run,
    3 every probe passed but a recovery objective (RTO, RPO) was missed."""
    from ..drill import load_plan, run_plan
    from ..probes.report import summary_lines

    summary, warnings = run_plan(load_plan(plan_file), RichReporter())
    for line in summary_lines(summary.results) if summary.results else []:
        click.echo(line)
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in summary.stages.items())
    click.echo(f"drill of {summary.environment} in lab {summary.lab or '-'}: exit {summary.exit_code}"
               + (f"; stages: {stages}" if stages else ""))
    for judged in summary.objectives:
        click.echo(judged.describe())
    for warning in warnings:
        click.echo(f"labmgr: warning: {warning}", err=True)
    if summary.error:
        click.echo(f"labmgr: error: {summary.error}", err=True)
    return summary.exit_code


@click.command()
@SPEC
def history(spec: Path) -> int:
    """The trend of drills: RTO, RPO, objectives met or missed, and pass rate; exit 1 when the last good
    drill is too old."""
    from ..history import drill_trend, history_for
    from ..objectives import format_duration

    from ..sources.storagehistory import latest_storage_checks

    env = load_environment(spec)
    with history_for(env) as store:
        drills = store.drills(env.name)
        checks = latest_storage_checks(store.db, env.name)
    for c in checks:        # the backup storage as the last drill found it (docs/sources.md)
        click.echo(f"storage {c.server}/{c.source} at {c.location} (checked {c.checked_at}): {c.backups} backups, "
                   f"newest {c.newest or '-'}, {c.missing} missing, versioning {c.versioning}, "
                   f"object lock {c.object_lock}, "
                   f"{'could delete' if c.can_delete else 'cannot delete' if c.can_delete is False else 'delete ?'}")
        for problem in c.problems:
            click.echo(f"labmgr: warning: {c.server}/{c.source}: {problem}", err=True)
    if not drills:
        click.echo(f"no drills of {env.name} yet ('labmgr run PLAN.yaml')")
        return 1
    click.echo(f"{'started':<21} {'point':<18} {'exit':>4} {'RTO s':>8} {'RPO':>8} {'probes':>9}  objectives")
    for d in drills:
        rpo = f"{d.rpo_seconds / 60:.0f} min" if d.rpo_seconds is not None else "-"
        judged = ", ".join(f"{j.name.upper()} met" if j.met else f"{j.name.upper()} MISSED"
                           + (f" by {format_duration(-j.margin)}" if j.margin is not None else "")
                           for j in d.judged())
        click.echo(f"{d.started_at:<21} {d.point or '-':<18} {d.exit_code:>4} {d.rto_seconds:>8.1f} {rpo:>8} "
                   f"{d.passed:>4}/{d.probes:<4}  {judged or '-'}")
    rate, mean_rto, warning = drill_trend(drills, env.drills.max_age_hours, datetime.now(timezone.utc))
    click.echo(f"{len(drills)} drills, {rate:.0f}% passed; mean RTO {mean_rto:.1f} s")
    for name in ("rto", "rpo"):
        judged = [j for d in drills for j in d.judged() if j.name == name]
        if judged:
            click.echo(f"{name.upper()} objective met in {sum(j.met for j in judged)} of {len(judged)} drills "
                       f"that declared it; the last: {judged[-1].describe()}")
    if warning:
        click.echo(f"labmgr: warning: {env.name}: {warning}", err=True)
    return 1 if warning or any(c.problems for c in checks) else 0
