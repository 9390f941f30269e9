"""How a drill tells people: heartbeat pings, a failure webhook, JUnit XML, a Prometheus textfile.

The probe runner fills a :class:`RunSummary`; :func:`announce` does the end-of-run
part. Nothing in here raises because a notification could not be delivered: a
dead heartbeat service or a full disk must not turn a good drill into a failed
one. Problems come back as warnings for the caller to print or log.
"""

from __future__ import annotations

import os

from ..progress import SILENT, Reporter
from ._http import redact_url, scrub
from .heartbeat import ping_fail, ping_start, ping_success, ping_url
from .junit import write_junit
from .model import (CRITICAL, EXIT_NOT_RUN, EXIT_OBJECTIVE_MISSED, EXIT_PASSED, EXIT_PROBE_FAILED, WARNING,
                    ProbeResult, RunSummary, iso)
from .prometheus import read_last_success, write_textfile
from .webhook import failure_payload, post_failure

__all__ = [
    "CRITICAL", "WARNING", "EXIT_PASSED", "EXIT_PROBE_FAILED", "EXIT_NOT_RUN", "EXIT_OBJECTIVE_MISSED",
    "ProbeResult", "RunSummary", "announce", "fail_body", "failure_payload", "iso",
    "ping_fail", "ping_start", "ping_success", "ping_url", "post_failure",
    "read_last_success", "redact_url", "write_junit", "write_textfile",
]

FAILED_LINES = 20  # failed probes listed in a fail ping body


def fail_body(summary: RunSummary) -> str:
    """The short text sent with a fail ping (credentials masked by the sender)."""
    lines = [summary.headline(), f"exit code {summary.exit_code}, "
             f"started {iso(summary.started_at)}, finished {iso(summary.finished_at)}"]
    failed = summary.failed_results
    for result in failed[:FAILED_LINES]:
        lines.append(f"- [{result.severity}] {result.name} on {result.server}: "
                     f"{scrub(result.detail, 300)}")
    if len(failed) > FAILED_LINES:
        lines.append(f"… and {len(failed) - FAILED_LINES} more")
    return "\n".join(lines)


def announce(summary: RunSummary, *, heartbeat_url: str | None = None,
             webhook_url: str | None = None,
             junit_path: str | os.PathLike[str] | None = None,
             prometheus_path: str | os.PathLike[str] | None = None,
             reporter: Reporter = SILENT) -> list[str]:
    """Tell everyone configured how the drill ended; returns warnings, never raises for delivery.

    Order: the local files first (JUnit, textfile: cheap and what CI and
    Prometheus read), then the webhook (only when the drill did not pass), then
    the heartbeat (success when exit code 0, fail otherwise) last, so the check
    only turns green after everything else was attempted.
    """
    warnings: list[str] = []
    jobs = [bool(junit_path), bool(prometheus_path),
            bool(webhook_url) and not summary.passed, bool(heartbeat_url)]
    with reporter.step("announce the result", total=sum(jobs) or None) as step:
        if junit_path:
            try:
                write_junit(junit_path, summary)
            except (OSError, ValueError) as error:
                warnings.append(f"JUnit report {junit_path} not written: {error}")
            step.advance()
        if prometheus_path:
            try:
                write_textfile(prometheus_path, summary)
            except (OSError, ValueError) as error:
                warnings.append(f"Prometheus textfile {prometheus_path} not written: {error}")
            step.advance()
        if webhook_url and not summary.passed:
            post_failure(webhook_url, summary, errors=warnings)
            step.advance()
        if heartbeat_url:
            if summary.passed:
                ping_success(heartbeat_url, errors=warnings)
            else:
                ping_fail(heartbeat_url, fail_body(summary), errors=warnings)
            step.advance()
    return warnings
