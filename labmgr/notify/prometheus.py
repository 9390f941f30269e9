"""A drill as a node_exporter textfile (``--collector.textfile.directory``).

One file per environment (e.g. ``labmgr-<environment>.prom``), replaced
atomically on every run. ``labmgr_last_success_timestamp_seconds`` is carried
over from the existing file when a run fails, so "when did this environment last
restore" survives a bad night; it is absent until the first success.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from ._files import atomic_write
from .model import RunSummary
from ..timeparse import utc

LAST_SUCCESS = "labmgr_last_success_timestamp_seconds"

_HELP = {
    "labmgr_probe_success": "1 if the probe passed in the last drill, 0 if it failed.",
    "labmgr_probe_duration_seconds": "How long the probe took in the last drill.",
    "labmgr_stage_duration_seconds": "How long each stage of the last drill took.",
    "labmgr_drill_success": "1 if the last drill passed (exit code 0), else 0.",
    "labmgr_drill_exit_code": "Exit code of the last drill: 0 passed, 1 a probe failed, 2 could not run.",
    "labmgr_last_run_timestamp_seconds": "Unix time the last drill finished.",
    LAST_SUCCESS: "Unix time the last successful drill finished.",
    "labmgr_rpo_seconds": "Age of the restored point when the drill ran (recovery point).",
    "labmgr_mutation_caught": "Damages the probes caught in the drill's mutation test (probe --mutate).",
    "labmgr_mutation_applied": "Damages made in the drill's mutation test.",
    "labmgr_mutation_score": "Caught / applied damages of the drill's mutation test (0..1).",
}


def escape_label(value: str) -> str:
    """A label value escaped per the text exposition format (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _unescape_label(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _number(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(**labels: str) -> str:
    inner = ",".join(f'{name}="{escape_label(str(value))}"' for name, value in labels.items())
    return "{" + inner + "}"


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def read_last_success(path: str | os.PathLike[str], environment: str) -> float | None:
    """``labmgr_last_success_timestamp_seconds`` for ``environment`` in an existing file, if any."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if not match or match.group(1) != LAST_SUCCESS:
            continue
        labels = {m.group(1): _unescape_label(m.group(2))
                  for m in _LABEL.finditer(match.group(3) or "")}
        if labels.get("environment") != environment:
            continue
        try:
            value = float(match.group(4))
        except ValueError:
            continue
        if math.isfinite(value):
            return value
    return None


def render(summary: RunSummary, previous_last_success: float | None = None) -> str:
    """The textfile for ``summary``; ``previous_last_success`` is kept when the drill failed."""
    env = summary.environment
    families: dict[str, list[str]] = {name: [] for name in _HELP}

    def sample(name: str, value: float, **labels: str) -> None:
        families[name].append(f"{name}{_labels(**labels)} {_number(value)}")

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

    lines: list[str] = []
    for name, samples in families.items():
        if not samples:
            continue
        lines.append(f"# HELP {name} {_HELP[name]}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(samples)
    return "\n".join(lines) + "\n"


def write_textfile(path: str | os.PathLike[str], summary: RunSummary) -> Path:
    """Write the textfile for ``summary`` to ``path`` atomically (temp file + rename)."""
    previous = None if summary.passed else read_last_success(path, summary.environment)
    return atomic_write(path, render(summary, previous).encode("utf-8"))
