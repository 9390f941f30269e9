"""What each probe kind runs in the guest: the planner of its kind, one family of kinds per module.

``plan(probe, context)`` returns a ``Plan``: the argv to run through the guest
agent (inside coreutils ``timeout``, so a stuck command is killed in the guest
too) and a function that turns the ExecResult into (passed, detail). Everything
here is pure: the unit tests feed it canned ExecResults.

The families: ``sqlchecks.py`` (database queries), ``netchecks.py`` (tcp, http,
isolation), ``guestchecks.py`` (command, checksum), ``datachecks.py`` (consistency,
drift); what they share is in ``plans.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from .datachecks import plan_consistency, plan_drift
from .guestchecks import judge_checksums, plan_checksum, plan_command
from .netchecks import (HTTP_SCRIPT, ISOLATION_SCRIPT, TCP_SCRIPT, judge_isolation, parse_http, plan_http,
                        plan_isolation, plan_tcp)
from .plans import TIMED_OUT, Context, Plan, Verdict, guarded
from .sqlchecks import (MAX_RANGES, format_ranges, freshness_query, gaps_query, judge_change, judge_freshness,
                        judge_gaps, judge_output, plan_compare, plan_freshness, plan_gaps, plan_sql, sql_argv)

# the names callers and tests import from here, wherever they now live
__all__ = [
    "HTTP_SCRIPT", "ISOLATION_SCRIPT", "MAX_RANGES", "PLANNERS", "TCP_SCRIPT", "TIMED_OUT", "Context", "Plan",
    "Verdict", "format_ranges", "freshness_query", "gaps_query", "guarded", "judge_change", "judge_checksums",
    "judge_freshness", "judge_gaps", "judge_isolation", "judge_output", "parse_http", "plan", "sql_argv",
]


def plan(probe, context: Context) -> Plan:
    return PLANNERS[probe.kind](probe, context)


PLANNERS: dict[str, Callable[..., Plan]] = {
    "compare_previous": plan_compare,
    "isolation": plan_isolation,
    "sql": plan_sql,
    "sequence_gaps": plan_gaps,
    "freshness": plan_freshness,
    "command": plan_command,
    "tcp": plan_tcp,
    "http": plan_http,
    "checksum": plan_checksum,
    "consistency": plan_consistency,
    "drift": plan_drift,
}
