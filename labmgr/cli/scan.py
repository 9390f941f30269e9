"""``labmgr dumps scan``: YARA rules over the content of stored dumps."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..spec import load_environment
from ..timeparse import format_point, parse_point
from .dumps import SPEC, dumps
from .format import human_size
from .progress import RichReporter


@dumps.command("scan")
@SPEC
@click.option("--rules", "rules_file", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="a YARA rules file (compiled with yara-x)")
@click.option("--from", "since", default=None, help="first dump time, e.g. '2026-11-21T08:00' or '1 day ago'")
@click.option("--to", "until", default=None, help="last dump time, same forms")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def dumps_scan(spec: Path, rules_file: Path, since: str | None, until: str | None, as_json: bool) -> int:
    """Scan every dump in the range with YARA rules; results go into the catalog.

    Exit status 1 when a rule matched any dump."""
    from ..dumps.scan import scan_dumps

    env = load_environment(spec)
    summary = scan_dumps(env, rules_file, since and parse_point(since), until and parse_point(until),
                         RichReporter())
    if as_json:
        click.echo(json.dumps({
            "rules_sha256": summary.rules.sha256, "scanned": summary.scanned, "cached": summary.cached,
            "bytes": summary.bytes, "seconds": round(summary.seconds, 3),
            "mb_per_second": round(summary.mb_per_second, 1),
            "dumps": [{"id": r.id, "server": r.server, "source": r.source, "taken_at": format_point(r.taken_at),
                       "clean": s.clean, "findings": [{"rule": f.rule, "member": f.member} for f in s.findings]}
                      for r, s in summary.results]}, indent=2))
    else:
        for record, result in summary.matched:
            click.echo(f"{record.id:>6}  {format_point(record.taken_at):<20} {record.server}/{record.source}: "
                       f"{result.describe()}")
        rate = f", {human_size(summary.bytes)} in {summary.seconds:.2f} s ({summary.mb_per_second:.1f} MB/s)" \
            if summary.scanned else ""
        click.echo(f"{len(summary.results)} dumps: {len(summary.matched)} matched, "
                   f"{len(summary.results) - len(summary.matched)} clean; {summary.scanned} scanned, "
                   f"{summary.cached} already scanned with these rules{rate}")
    return 1 if summary.matched else 0
