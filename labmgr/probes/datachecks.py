"""Probes of the data as a whole: ``consistency`` (the engines' own checkers) and ``drift`` (this
hour's data profile against the nearest earlier restored hour's, see ``profiling.py``)."""

from __future__ import annotations

import re

from ..execresult import ExecResult
from ..timeparse import format_point
from .plans import Context, Plan, Verdict
from .profiling import judge_drift

MAX_FINDINGS = 10

# pg_amcheck --install-missing creates the amcheck extension in a database lacking it (the lab's
# own copy: production is never touched); pg_dump to /dev/null is the full read of every table
CONSISTENCY_SCRIPT = r"""
rc=0
# Debian wraps psql and pg_dump in /usr/bin, not pg_amcheck: the newest server's own then
amcheck=$(command -v pg_amcheck || ls -d /usr/lib/postgresql/*/bin/pg_amcheck 2>/dev/null | sort -V | tail -n 1)
for db in $PG_DATABASES; do
  echo "== postgres $db"
  runuser -u postgres -- "${amcheck:-pg_amcheck}" --install-missing --heapallindexed -d "$db" 2>&1 || rc=1
  runuser -u postgres -- pg_dump --data-only -d "$db" -f /dev/null 2>&1 || rc=1
done
if [ -n "$MARIADB_DATABASES" ]; then
  echo "== mariadb"
  mariadb-check --extended --databases $MARIADB_DATABASES 2>&1 || rc=1
fi
exit $rc
"""

_PG_RELATION = re.compile(r'^(heap table|btree index|index|toast table) "([^"]+)"(.*):\s*$')
_PG_DUMP_TABLE = re.compile(r'Dumping the contents of table "([^"]+)" failed')
_MARIADB_STATUS = re.compile(r"^(error|warning|note|status)\s*:\s*(.*)$", re.IGNORECASE)


def consistency_sources(probe, env) -> tuple[list[str], list[str]]:
    """(postgres databases, mariadb databases) the probe's server dumps (only ``probe.engine``'s if given)."""
    server = env.server(probe.server)
    pick = [d for d in server.dumps if d.kind in ("postgres", "mariadb") and probe.engine in (None, d.kind)]
    return (sorted({d.database for d in pick if d.kind == "postgres"}),
            sorted({d.database for d in pick if d.kind == "mariadb"}))


def judge_consistency(output: str, exit_code: int) -> Verdict:
    """Findings named by relation with the engine's own message; a clean run lists what was checked."""
    findings: list[str] = []
    checked: list[str] = []
    section = ""
    table = ""
    pending: str | None = None
    notes: dict[str, list[str]] = {}
    bad: set[str] = set()
    for raw in output.splitlines():
        line = raw.rstrip()
        if line.startswith("== "):
            section, table, pending = line[3:], "", None
            checked.append(section)
            continue
        if section.startswith("postgres"):
            relation = _PG_RELATION.match(line.strip())
            dump = _PG_DUMP_TABLE.search(line)
            if relation:
                pending = f'{relation.group(1)} "{relation.group(2)}"{relation.group(3)}'
            elif dump:
                pending = f"table {section.split()[-1]}.{dump.group(1)} (full read)"
            elif pending and line.strip():
                findings.append(f"{pending}: {line.strip()}")
                pending = None
            elif "error" in line.lower() and line.strip():
                findings.append(f"{section}: {line.strip()}")
        elif section == "mariadb":
            status = _MARIADB_STATUS.match(line.strip())
            if status and status.group(1).lower() in ("error", "warning"):
                notes.setdefault(table or "?", []).append(status.group(2))
                if status.group(1).lower() == "error":
                    bad.add(table or "?")
            elif line.strip().startswith("mariadb-check:"):
                findings.append(f"mariadb: {line.strip()}")
            elif line.strip() and not status:
                table = line.split()[0]
    findings += [f"table {name}: {'; '.join(notes[name])}" for name in sorted(bad)]
    if findings:
        more = f" (and {len(findings) - MAX_FINDINGS} more)" if len(findings) > MAX_FINDINGS else ""
        return False, "; ".join(findings[:MAX_FINDINGS]) + more
    if exit_code != 0:
        tail = " | ".join(line.strip() for line in output.strip().splitlines()[-3:]) or "no output"
        return False, f"the checks exited {exit_code}: {tail}"
    if not checked:
        return True, "nothing to check"
    methods = (("postgres", "pg_amcheck --heapallindexed and a full read"), ("mariadb", "mariadb-check --extended"))
    how = [how for engine, how in methods if any(c.startswith(engine) for c in checked)]
    return True, f"no corruption found: {', '.join(checked)} ({'; '.join(how)})"


def plan_consistency(probe, context: Context) -> Plan:
    postgres, mariadb = consistency_sources(probe, context.env)
    argv = ["env", f"PG_DATABASES={' '.join(postgres)}", f"MARIADB_DATABASES={' '.join(mariadb)}",
            "sh", "-c", CONSISTENCY_SCRIPT]

    def evaluate(result: ExecResult) -> Verdict:
        return judge_consistency(result.stdout + ("\n" + result.stderr if result.stderr else ""), result.exit_code)
    return Plan(argv, evaluate)


def share(value: float | str) -> float:
    """'10%' or 0.1 -> 0.1."""
    if isinstance(value, str):
        return float(value.strip().rstrip("%")) / 100
    return float(value)


def plan_drift(probe, context: Context) -> Plan:
    """Judged on the host from the profiles the probe run took before the probes: no guest command."""
    def evaluate(result: ExecResult) -> Verdict:
        current = context.profiles.get(probe.server)
        now = format_point(context.point) if context.point else "now"
        if current is None:
            return False, f"no data profile of {probe.server} at {now} (was the lab restored to a point?)"
        earlier = context.previous_profiles.get(probe.server)
        return judge_drift(current, earlier[1] if earlier else None, (now, earlier[0] if earlier else None),
                           max_shrink=share(probe.max_shrink), max_entropy_jump=share(probe.max_entropy_jump),
                           new_extensions=probe.new_extensions)
    return Plan([], evaluate)
