"""Arguments several commands share."""

from __future__ import annotations

from pathlib import Path

import click

SPEC = click.argument("spec", type=click.Path(path_type=Path, dir_okay=False))
