"""``labmgr probe LAB --mutate``: print how much the probes catch."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .progress import RichReporter


def probe_mutate(name: str, probes_file: Path, only: list[str] | None, json_path: Path | None) -> int:
    """Exit 0 every applied damage was caught, 1 some went unnoticed or the lab's probes changed."""
    from ..lab.mutate import mutate_lab

    score = mutate_lab(name, probes_file, only, RichReporter())
    for outcome in score.outcomes:
        mark = "caught" if outcome.caught else ("MISSED" if outcome.applied else "n/a   ")
        detail = f"by {', '.join(outcome.caught_by)}" if outcome.caught else outcome.error
        click.echo(f"{mark}  {outcome.damage.server}: {outcome.damage.description}"
                   + (f" ({detail})" if detail else ""))
    for line in score.blind:
        click.echo(f"blind spot: {line}")
    click.echo(f"score {score.caught}/{score.applied} damages caught ({score.score:.0%}); the lab is back at "
               f"{score.point or 'its point'}" + ("" if score.restored else
                                                  " but its probes now answer differently: restore it"))
    if json_path:
        json_path.write_text(json.dumps(as_dict(score), indent=2))
    return 0 if score.restored and score.caught == score.applied else 1


def as_dict(score) -> dict:
    return {"lab": score.lab, "point": score.point, "caught": score.caught, "applied": score.applied,
            "score": round(score.score, 3), "restored": score.restored, "baseline": score.baseline,
            "after": score.after, "blind": score.blind, "seconds": score.seconds,
            "damages": [{"server": o.damage.server, "damage": o.damage.description, "applied": o.applied,
                         "caught_by": o.caught_by, "error": o.error} for o in score.outcomes]}
