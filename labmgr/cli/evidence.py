"""``labmgr probe``, ``signoff``, ``report``: what a lab was checked for, by probes and by people, and its report."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
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


@click.command()
@click.argument("name")
@click.option("--user", required=True, help="who checked")
@click.option("--note", required=True, help='what was checked and found, e.g. "Q3 invoices present"')
def signoff(name: str, user: str, note: str) -> None:
    """Record a user's sign-off on what they checked in a lab (evidence for the report)."""
    from ..lab.evidence import sign_off

    recorded = sign_off(name, user, note)
    click.echo(f"signed off by {recorded.user} at {recorded.at} (lab {name} at {recorded.point or 'clean clone'})")


@click.command()
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="write here instead of standard output")
@click.option("--pdf", "pdf_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="also print the HTML report to this PDF (headless Chromium); alone, only the PDF is written")
@click.option("--spec", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="the environment spec (needed once the lab is down)")
def report(name: str, fmt: str, output: Path | None, pdf_path: Path | None, spec: Path | None) -> None:
    """Write the DR-day report of a lab: verdict and objectives first, then points restored, stage times,
    probes, sign-offs."""
    from ..history import now
    from ..lab.evidence import evidence_for
    from ..report import render_report
    from ..report.pdf import html_to_pdf

    evidence, generated = evidence_for(name, spec), now()
    if output or not pdf_path:
        text = render_report(evidence, fmt, generated)
        if output:
            output.write_text(text)
            click.echo(f"report written to {output}")
        else:
            click.echo(text, nl=False)
    if pdf_path:
        html_to_pdf(render_report(evidence, "html", generated), pdf_path)
        click.echo(f"PDF written to {pdf_path}")
