"""A JSON POST to a webhook when a drill failed.

The payload is plain JSON (below) plus a ``text`` field, so Slack and Mattermost
incoming webhooks show a readable line as they are; anything else (n8n, a small
relay, Alertmanager-style receivers) reads the structured fields.

What is never sent: probe output (``output_tail`` may contain anything the probe
printed) and credentials; ``detail`` and ``error`` are cut short and have
``password=``-style pairs and URL passwords masked.
"""

from __future__ import annotations

import json
from typing import Any

from ._http import RETRIES, TIMEOUT, deliver, scrub
from .model import RunSummary, iso

DETAIL_LIMIT = 500
ERROR_LIMIT = 2000
SCHEMA = "labmgr.drill/1"


def failure_payload(summary: RunSummary) -> dict[str, Any]:
    """The JSON object :func:`post_failure` sends."""
    failed = [
        {"name": r.name, "server": r.server, "kind": r.kind, "severity": r.severity,
         "detail": scrub(r.detail, DETAIL_LIMIT)}
        for r in summary.failed_results
    ]
    return {
        "schema": SCHEMA,
        "text": scrub(summary.headline(), ERROR_LIMIT),
        "environment": summary.environment,
        "lab": summary.lab,
        "point": summary.point,
        "exit_code": summary.exit_code,
        "error": scrub(summary.error, ERROR_LIMIT),
        "failed_probes": failed,
        "probes_total": len(summary.results),
        "stages": {name: round(float(seconds), 3) for name, seconds in summary.stages.items()},
        "started_at": iso(summary.started_at),
        "finished_at": iso(summary.finished_at),
        "duration_seconds": round(summary.duration_seconds, 3),
        "rpo_seconds": summary.rpo_seconds,
        "objectives": [{"name": j.name, "target_seconds": j.target, "measured_seconds": j.measured,
                        "met": j.met, "text": j.describe()} for j in summary.objectives],
    }


def post_failure(url: str, summary: RunSummary, *, timeout: float = TIMEOUT,
                 retries: int = RETRIES, errors: list[str] | None = None) -> bool:
    """POST :func:`failure_payload` as JSON; ``True`` when accepted, never raises."""
    if not url:
        return False
    try:
        body = json.dumps(failure_payload(summary), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as error:  # a malformed summary must not break the drill
        if errors is not None:
            errors.append(f"webhook: could not build the payload: {error}")
        return False
    reason = deliver("POST", url, body, content_type="application/json",
                     timeout=timeout, retries=retries)
    if reason is not None:
        if errors is not None:
            errors.append(f"webhook: {reason}")
        return False
    return True
