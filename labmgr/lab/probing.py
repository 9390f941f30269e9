"""`labmgr probe LAB`: run the probes of a lab at the point it is at, and keep the results.

Before the probes, the lab's data profile (``profiler.py``); after them, each server's console
evidence (``consoles.py``); both are kept in the history with the run.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

from ..errors import LabError, LabmgrError, NotFoundError
from ..history import history_for
from ..history_evidence import previous_profile, record_consoles, record_profiles
from ..hosts import host_for
from ..hypervisor import Hypervisor, connect
from ..notify.model import RunSummary
from ..probes import load_probes, run_probes
from ..probes.runner import lab_point
from ..probes.report import exit_code
from ..spec import Environment, load_environment
from ..timeparse import format_point
from . import records
from .consoles import take_consoles
from .guestchannel import channel_for
from .profiler import take_profiles


def probe_lab(name: str, probes_file: Path, only: list[str] | None = None) -> RunSummary:
    """Under the lab's lock: no restore changes the lab while it is probed, and the results are
    filed under the point the lab is actually at."""
    records.load(name)          # a lab that does not exist: said before any lock is made for it
    with records.lab_lock(name):
        return _probe(records.load(name), probes_file, only)


def channels_of(hypervisor: Hypervisor, record):
    """server -> its lab guest's command channel (agent or lab login over SSH), each opened once."""
    agents: dict[str, object] = {}
    lock = threading.Lock()

    def agent_for(server: str):
        with lock:
            if server not in agents:
                lab_server = record.servers.get(server)
                if lab_server is None:
                    raise NotFoundError(f"lab {record.name} has no server '{server}'")
                agents[server] = channel_for(hypervisor.domain(lab_server.domain), record, server, timeout=10)
            return agents[server]
    return agent_for


def probe_with_profiles(hypervisor: Hypervisor, record, env: Environment, probes: list,
                        only: list[str] | None = None, previous: dict | None = None):
    """(results, profiles): the lab's data profile taken, then the probes run with it (drift reads it)."""
    agent_for = channels_of(hypervisor, record)
    profiles = take_profiles(env, agent_for)
    before = lab_point(record) or datetime.now(timezone.utc)
    with history_for(env) as history:
        earlier = {server: found for server in profiles
                   if (found := previous_profile(history, env.name, server, before)) is not None}
    results = run_probes(record, env, probes, only=only, previous=previous, agent_for=agent_for,
                         profiles={server: profile for server, (profile, _) in profiles.items()},
                         previous_profiles=earlier)
    return results, profiles


def _probe(record, probes_file: Path, only: list[str] | None) -> RunSummary:
    name = record.name
    if record.state != "up":
        raise LabError(f"lab {name} is {record.state}, not up", hint=f"'labmgr lab show {name}'")
    env = load_environment(record.spec)
    probes = load_probes(probes_file, env)
    started = datetime.now(timezone.utc)
    compared = [p.name for p in probes if p.kind == "compare_previous"]
    with history_for(env) as history:
        previous = history.previous_values(env.name, compared, lab_point(record) or started) if compared else {}
    with connect(record.hypervisor) as hypervisor, host_for(record.hypervisor) as host:
        results, profiles = probe_with_profiles(hypervisor, record, env, probes, only, previous)
        finished = datetime.now(timezone.utc)
        point = record.point.get("at", "")
        summary = RunSummary(environment=env.name, lab=name, point=point, started_at=started, finished_at=finished,
                             stages={"probes": round((finished - started).total_seconds(), 2)},
                             results=results, exit_code=exit_code(results))
        with history_for(env) as history:
            run_id = history.record_probe_run(name, env.name, point, format_point(started), format_point(finished),
                                              summary.exit_code, results)
            record_profiles(history, run_id, name, env.name, point, profiles)
        try:
            consoles = take_consoles(hypervisor, host, record, env.name, run_id)
        except LabmgrError:         # evidence missing is said by its absence, the verdicts stand
            consoles = []
    with history_for(env) as history:
        record_consoles(history, run_id, consoles)
    return summary
