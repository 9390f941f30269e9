"""labmgr's command line: the top group, the commands of labmgr itself, and every topic's commands added to it.

Each command parses its arguments, calls the core, prints. The topics live in
sibling modules (``images.py``, ``snapshots.py``, ``labs.py``, ``evidence.py``,
``drills.py``, ``dumps.py``, ``access.py``, ``share.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from ..spec import load_environment
from . import access, share
from .drills import history, run
from .dumps import dumps
from . import sources as _sources  # noqa: F401  (adds 'dumps index' and 'dumps check-storage')
from .evidence import probe, report, signoff
from .images import image
from .labs import lab
from .progress import RichReporter
from .recovering import recover_first
from .snapshots import snapshot


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


# demo ------------------------------------------------------------------------
@cli.group(invoke_without_command=True)
@click.option("--hours", type=click.IntRange(min=3), default=24, show_default=True,
              help="Length of the simulated day (at least 3: the bad hour has a good hour on each side).")
@click.pass_context
def demo(ctx: click.Context, hours: int) -> None:
    """A small real production on this machine, a day of hourly dumps, and the drill on it (docs/demo.md)."""
    if ctx.invoked_subcommand is None:
        from ..demo.run import run_demo

        run_demo(RichReporter(), click.echo, hours_count=hours)


@demo.command("down")
def demo_down_command() -> None:
    """Remove everything the demo made but the cached guest image."""
    from ..demo.down import demo_down

    demo_down(RichReporter(), click.echo)


# every topic's commands -------------------------------------------------------
cli.add_command(image)
cli.add_command(snapshot)
cli.add_command(lab)
cli.add_command(probe)
cli.add_command(run)
cli.add_command(history)
cli.add_command(signoff)
cli.add_command(report)
cli.add_command(dumps)
cli.add_command(access.console)
cli.add_command(access.ssh)
cli.add_command(access.forward)
cli.add_command(share.share)
cli.add_command(share.shares)
cli.add_command(share.unshare)
