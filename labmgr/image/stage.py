"""What a build's stages share: the attributes ``build._Build`` sets and each stage reads."""

from __future__ import annotations

from pathlib import Path

from ..progress import Reporter
from .host import Tools
from .recipe import Recipe
from .runner import Runner


class BuildState:
    """Declared once here; ``_Build.__init__`` gives them their values."""

    recipe: Recipe
    tools: Tools
    mirror: str
    images: Path
    reporter: Reporter
    root: Path
    out: Path
    runner: Runner
    kernel_version: str
