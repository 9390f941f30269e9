"""``labmgr image build``: guest images built from Debian packages."""

from __future__ import annotations

from pathlib import Path

import click

from .progress import RichReporter


@click.group()
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
