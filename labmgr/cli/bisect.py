"""``labmgr bisect LAB``: the last good and the first bad hour, in about log2(N) restores."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..timeparse import format_point
from .commands import cli
from .progress import RichReporter


@cli.command()
@click.argument("lab")
@click.option("--probes", "probes_file", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="the probe file (docs/probes.md)")
@click.option("--probe", default=None, help="judge each hour by this probe only (default: every critical probe)")
@click.option("--from", "since", default=None, help="first hour, e.g. '2026-11-21T08:00' or '1 day ago'")
@click.option("--to", "until", default=None, help="last hour, same forms (default: the newest dump)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def bisect(lab: str, probes_file: Path, probe: str | None, since: str | None, until: str | None,
           as_json: bool) -> int:
    """Find the last good and the first bad hour, assuming once bad the data stays bad.

    Uses at most ceil(log2 N) + 2 restores for N hours and leaves the lab at the
    last good hour. Exit 0 found (or all good), 1 no good hour or a contradiction."""
    from ..lab.bisect import bisect_lab

    result = bisect_lab(lab, probes_file, probe, since, until, RichReporter())
    if as_json:
        def point(moment):
            return moment and format_point(moment)
        click.echo(json.dumps({"lab": lab, "verdict": result.verdict, "last_good": point(result.last_good),
                               "first_bad": point(result.first_bad), "hours": result.hours,
                               "restores": result.restores, "budget": result.budget, "seconds": result.seconds,
                               "steps": [{"point": point(s.point), "passed": s.passed, "seconds": s.seconds,
                                          "failed": s.failed} for s in result.steps]}, indent=2))
    else:
        for step in result.steps:
            click.echo(f"  {format_point(step.point):<20} {'good' if step.passed else 'bad ':<5}"
                       + (f" {', '.join(step.failed)}" if step.failed else ""))
        click.echo(f"{result.message} ({result.restores} restores of at most {result.budget}, "
                   f"{result.seconds:.0f} s)")
    return result.exit_code
