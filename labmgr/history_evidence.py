"""What a probe run keeps besides its verdicts: each server's data profile and console evidence.

The tables (``history_profiles``, ``history_consoles``) are declared with the others in
``history.py``; the screenshots and serial tails themselves are files under
``$LABMGR_STATE_DIR/evidence/<env>/run-<id>/``, the tables hold their paths and metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .errors import LabmgrError
from .history import History
from .probes.profiling import profile_diff
from .paths import state_dir
from .timeparse import parse_point


@dataclass
class ConsoleEvidence:
    server: str
    screenshot: str         # a PNG's path under the state directory; '' when the VM has no screen
    width: int
    height: int
    serial_log: str         # the copy of the serial console's last lines kept with the run
    serial_tail: str
    error: str              # what could not be taken, and why
    taken_at: str


def evidence_dir(environment: str, run_id: int) -> Path:
    return state_dir() / "evidence" / environment / f"run-{run_id}"


def record_profiles(history: History, run_id: int, lab: str, environment: str, point: str,
                    profiles: dict[str, tuple[dict, float]]) -> None:
    """``profiles``: server -> (profile, seconds it took)."""
    with history.db:
        history.db.executemany(
            "INSERT INTO history_profiles (run_id, lab, environment, point, server, profile, seconds) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(run_id, lab, environment, point, server, json.dumps(profile, sort_keys=True), seconds)
             for server, (profile, seconds) in sorted(profiles.items())])


def record_consoles(history: History, run_id: int, consoles: list[ConsoleEvidence]) -> None:
    with history.db:
        history.db.executemany(
            "INSERT INTO history_consoles (run_id, server, screenshot, width, height, serial_log, serial_tail, "
            "error, taken_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, c.server, c.screenshot, c.width, c.height, c.serial_log, c.serial_tail, c.error, c.taken_at)
             for c in consoles])


def consoles_of(history: History, run_id: int) -> list[ConsoleEvidence]:
    return [ConsoleEvidence(*row) for row in history.db.execute(
        "SELECT server, screenshot, width, height, serial_log, serial_tail, error, taken_at FROM history_consoles "
        "WHERE run_id = ? ORDER BY server", (run_id,))]


def profiles_of(history: History, run_id: int) -> dict[str, dict]:
    return {server: json.loads(profile) for server, profile in history.db.execute(
        "SELECT server, profile FROM history_profiles WHERE run_id = ? ORDER BY server", (run_id,))}


def _by_point(history: History, environment: str, lab: str | None = None) -> dict[str, dict[str, dict]]:
    """point -> server -> profile; at each point the newest run's profile of each server."""
    out: dict[str, dict[str, dict]] = {}
    query = "SELECT point, server, profile FROM history_profiles WHERE environment = ? AND point != ''"
    arguments: tuple = (environment,)
    if lab is not None:
        query, arguments = query + " AND lab = ?", (environment, lab)
    for point, server, profile in history.db.execute(query + " ORDER BY run_id", arguments):
        out.setdefault(point, {})[server] = json.loads(profile)
    return out


def _moment(point: str) -> datetime | None:
    try:
        return parse_point(point)
    except LabmgrError:
        return None


def profiles_by_hour(history: History, environment: str, lab: str | None = None) -> list[tuple[str, dict]]:
    """[(point, {server: profile})], oldest hour first."""
    dated = [(_moment(point), point, servers) for point, servers in _by_point(history, environment, lab).items()]
    return [(point, servers) for moment, point, servers in sorted(x for x in dated if x[0] is not None)]


def previous_profile(history: History, environment: str, server: str, before: datetime) -> tuple[str, dict] | None:
    """(point, profile) of ``server`` at the nearest restored hour before ``before``, in any lab (at
    that hour the newest run's). Only the chosen profile is read: a year of hours is a quick scan."""
    best: tuple[datetime, str] | None = None
    for (point,) in history.db.execute("SELECT DISTINCT point FROM history_profiles WHERE environment = ? "
                                       "AND server = ? AND point != ''", (environment, server)):
        moment = _moment(point)
        if moment is not None and moment < before and (best is None or moment > best[0]):
            best = (moment, point)
    if best is None:
        return None
    (profile,) = history.db.execute("SELECT profile FROM history_profiles WHERE environment = ? AND server = ? "
                                    "AND point = ? ORDER BY run_id DESC LIMIT 1",
                                    (environment, server, best[1])).fetchone()
    return best[1], json.loads(profile)


def row_counts(history: History, environment: str, lab: str | None = None) -> dict[str, list[tuple[str, int]]]:
    """Row counts per hour per table: ``{"db01: shop.invoices": [(point, rows), ...]}``, hours in order."""
    out: dict[str, list[tuple[str, int]]] = {}
    for point, servers in profiles_by_hour(history, environment, lab):
        for server, profile in sorted(servers.items()):
            for table, figures in sorted(profile.get("tables", {}).items()):
                out.setdefault(f"{server}: {table}", []).append((point, figures["rows"]))
    return out


def compare_hour(history: History, environment: str, hour: datetime) -> tuple[str, str, list] | None:
    """(point, earlier point, rows) for the restored hour ``hour`` (its newest point within the
    hour) and the nearest earlier profiled hour: rows as ``profile_diff`` gives them, per server."""
    hours = profiles_by_hour(history, environment)
    index = next((i for i in reversed(range(len(hours)))
                  if _moment(hours[i][0]).replace(minute=0, second=0, microsecond=0) == hour), None)
    if index is None:
        return None
    point, servers = hours[index]
    earlier_point, earlier = hours[index - 1] if index else ("", {})
    rows = [(f"{server}: {what}", before, after, changed) for server in sorted(set(servers) | set(earlier))
            for what, before, after, changed in profile_diff(servers.get(server), earlier.get(server))]
    return point, earlier_point, rows
