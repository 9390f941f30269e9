"""A drill plan: which environment, which snapshot, which points, which probes, who to tell."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from .. import yamlfile
from ..dumps.store import DumpStore
from ..errors import LabmgrError, SpecError
from ..lab.lease import lease_hours
from ..objectives import Objectives
from ..strict import Strict
from ..timeparse import parse_point

RANDOM = re.compile(r"^random (\d+) from the last (\d+) hours$")


class Keep(Strict):
    lease: str = Field(default="8h", description="how long people may use the lab, e.g. 8h, 2d")

    @field_validator("lease")
    @classmethod
    def _lease(cls, value: str) -> str:
        try:
            lease_hours(value)
        except LabmgrError:
            raise ValueError(f"'{value}' is not a lease like 8h or 2d") from None
        return value


class Notify(Strict):
    heartbeat_url: str | None = None     # pinged /start, then on success, or /fail
    webhook_url: str | None = None       # JSON on failure
    junit: Path | None = None
    prometheus: Path | None = None       # node_exporter textfile


class Reports(Strict):
    directory: Path
    formats: list[Literal["md", "html", "pdf"]] = ["md", "html"]   # pdf: the HTML printed by Chromium


class Plan(Strict):
    environment: Path                    # the spec, relative to the plan
    probes: Path                         # the probe file, relative to the plan
    snapshot: str = "latest"             # latest | capture | <snapshot id>
    points: str | list[str] = "latest"   # latest | [times...] | "random N from the last H hours"
    lab_name: str | None = None
    keep: Keep | None = None             # keep the lab for people, with a lease
    report: Reports | None = None
    notify: Notify = Notify()
    mutate: bool = False                 # after the last point: probe --mutate (score into report and metrics)
    objectives: Objectives | None = None # override the spec's, one by one (rto, rpo)

    @field_validator("points")
    @classmethod
    def _points(cls, value: str | list[str]) -> str | list[str]:
        items = [value] if isinstance(value, str) else value
        if not items:
            raise ValueError("give at least one point")
        for item in items:
            if not RANDOM.match(item):
                try:
                    parse_point(item)
                except LabmgrError as exc:
                    raise ValueError(f"{exc.message}, or 'random N from the last H hours'") from None
        return value


def load_plan(path: Path) -> Plan:
    plan, _ = yamlfile.load(Path(path), Plan)
    base = Path(path).absolute().parent
    changes = {"environment": base / plan.environment, "probes": base / plan.probes}
    if plan.report:
        changes["report"] = plan.report.model_copy(update={"directory": base / plan.report.directory})
    return plan.model_copy(update=changes)


def resolve_points(points: str | list[str], store: DumpStore, now: datetime,
                   rng: random.Random | None = None) -> list[str]:
    """The points to restore, as texts `lab restore --at` takes."""
    out: list[str] = []
    for item in [points] if isinstance(points, str) else points:
        match = RANDOM.match(item)
        if not match:
            out.append(item)
            continue
        count, hours = int(match[1]), int(match[2])
        moments = sorted({r.taken_at for r in store.catalog.list(since=now - timedelta(hours=hours), until=now)
                          if r.state != "bad"})
        if not moments:
            raise SpecError(f"no dumps in the last {hours} hours to choose from")
        chosen = (rng or random.Random()).sample(moments, min(count, len(moments)))
        out.extend(moment.strftime("%Y-%m-%dT%H:%M:%SZ") for moment in sorted(chosen))
    return out
