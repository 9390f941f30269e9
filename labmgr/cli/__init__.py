"""The command line: a thin skin over the core. Every error is one line and an exit code."""

from __future__ import annotations

import os
import sys

import click

from ..errors import LabmgrError
from .commands import cli
from . import bisect as _bisect, scan as _scan  # noqa: F401,E402  (add 'bisect', 'dumps scan')


def main(argv: list[str] | None = None) -> int:
    try:
        code = cli.main(args=argv, prog_name="labmgr", standalone_mode=False)
    except LabmgrError as exc:
        click.echo(f"labmgr: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("labmgr: interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("labmgr: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"labmgr: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("LABMGR_DEBUG"):
            raise
        click.echo(f"labmgr: internal error: {type(exc).__name__}: {exc} "
                   "(set LABMGR_DEBUG=1 for the traceback and please report it)", err=True)
        return 70
    return code if isinstance(code, int) else 0


def run() -> None:
    sys.exit(main())
