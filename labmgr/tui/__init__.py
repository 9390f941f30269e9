"""The labmgr TUI (Textual): ``labmgr tui [ENV.yaml] [--lab NAME] [--probes FILE]``.

A thin skin over the core, like the CLI: every screen asks ``backend.Backend``,
whose real implementation calls the core's functions. The core never imports
this package.
"""

from __future__ import annotations

from pathlib import Path


def run_tui(spec: Path | None = None, lab: str | None = None, probes: Path | None = None) -> None:
    """Open the TUI (on ``lab``'s timeline when given). Bad input raises LabmgrError before the
    screen is taken over, so the CLI prints one line."""
    from .app import LabmgrApp
    from .backend import CoreBackend

    backend = CoreBackend()
    spec, row, probes = backend.check(spec, lab, probes)
    LabmgrApp(backend, spec=spec, lab=row, probes=probes).run()
