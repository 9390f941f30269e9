"""A drill as a node_exporter textfile (``--collector.textfile.directory``).

One file per environment (e.g. ``labmgr-<environment>.prom``), replaced
atomically on every run. ``labmgr_last_success_timestamp_seconds`` is carried
over from the existing file when a run fails, so "when did this environment last
restore" survives a bad night; it is absent until the first success.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ..atomic import atomic_write
from .model import RunSummary
from ..timeparse import utc

LAST_SUCCESS = "labmgr_last_success_timestamp_seconds"

_HELP = {
    "labmgr_probe_success": "1 if the probe passed in the last drill, 0 if it failed.",
    "labmgr_probe_duration_seconds": "How long the probe took in the last drill.",
    "labmgr_stage_duration_seconds": "How long each stage of the last drill took.",
    "labmgr_drill_success": "1 if the last drill passed (exit code 0), else 0.",
    "labmgr_drill_exit_code": "Exit code of the last drill: 0 passed, 1 a probe failed, 2 could not run, "
                              "3 an objective missed.",
    "labmgr_last_run_timestamp_seconds": "Unix time the last drill finished.",
    LAST_SUCCESS: "Unix time the last successful drill finished.",
    "labmgr_rpo_seconds": "Age of the restored point when the drill ran (recovery point).",
    "labmgr_mutation_caught": "Damages the probes caught in the drill's mutation test (probe --mutate).",
    "labmgr_mutation_applied": "Damages made in the drill's mutation test.",
    "labmgr_mutation_score": "Caught / applied damages of the drill's mutation test (0..1).",
    "labmgr_objective_target_seconds": "A recovery objective of the last drill (rto, rpo), in seconds.",
    "labmgr_objective_measured_seconds": "What the last drill measured against the objective (absent: not measured).",
    "labmgr_objective_met": "1 if the last drill met the objective, else 0.",
    "labmgr_objective_margin_seconds": "Objective minus measured: seconds to spare, negative when missed.",
}


def read_last_success(path: str | os.PathLike[str], environment: str) -> float | None:
    """``labmgr_last_success_timestamp_seconds`` for ``environment`` in an existing file, if any."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        families = list(text_string_to_metric_families(text))
    except (OSError, ValueError):
        return None
    for family in families:
        for sample in family.samples:
            if sample.name == LAST_SUCCESS and sample.labels.get("environment") == environment \
                    and math.isfinite(sample.value):
                return sample.value
    return None


def render(summary: RunSummary, previous_last_success: float | None = None) -> str:
    """The textfile for ``summary``; ``previous_last_success`` is kept when the drill failed."""
    env = summary.environment
    registry = CollectorRegistry(auto_describe=False)
    gauges: dict[str, Gauge] = {}

    def sample(name: str, value: float, **labels: str) -> None:
        if name not in gauges:           # a family is written only when it has samples
            gauges[name] = Gauge(name, _HELP[name], list(labels), registry=registry)
        gauges[name].labels(**labels).set(value)

    for result in summary.results:
        labels = dict(environment=env, lab=summary.lab, probe=result.name,
                      server=result.server, severity=result.severity)
        sample("labmgr_probe_success", 1 if result.passed else 0, **labels)
        sample("labmgr_probe_duration_seconds", result.seconds, **labels)
    for stage, seconds in summary.stages.items():
        sample("labmgr_stage_duration_seconds", seconds, environment=env, stage=stage)
    sample("labmgr_drill_success", 1 if summary.passed else 0, environment=env)
    sample("labmgr_drill_exit_code", summary.exit_code, environment=env)
    finished = utc(summary.finished_at).timestamp()
    sample("labmgr_last_run_timestamp_seconds", finished, environment=env)
    last_success = finished if summary.passed else previous_last_success
    if last_success is not None:
        sample(LAST_SUCCESS, last_success, environment=env)
    if summary.rpo_seconds is not None:
        sample("labmgr_rpo_seconds", summary.rpo_seconds, environment=env)
    if summary.mutation:
        for key in ("caught", "applied", "score"):
            sample(f"labmgr_mutation_{key}", summary.mutation[key], environment=env)
    for judged in summary.objectives:
        sample("labmgr_objective_target_seconds", judged.target, environment=env, objective=judged.name)
        sample("labmgr_objective_met", 1 if judged.met else 0, environment=env, objective=judged.name)
        if judged.measured is not None:
            sample("labmgr_objective_measured_seconds", judged.measured, environment=env, objective=judged.name)
            sample("labmgr_objective_margin_seconds", judged.margin, environment=env, objective=judged.name)
    return generate_latest(registry).decode("utf-8")


def write_textfile(path: str | os.PathLike[str], summary: RunSummary) -> Path:
    """Write the textfile for ``summary`` to ``path`` atomically (temp file + rename).

    Not prometheus_client's ``write_to_textfile``: it neither fsyncs nor sets the
    mode, and node_exporter (another user) must never read half a file."""
    previous = None if summary.passed else read_last_success(path, summary.environment)
    return atomic_write(path, render(summary, previous).encode("utf-8"))
