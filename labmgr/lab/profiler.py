"""Take a lab's data profile (``probes/profiling.py`` says what it holds) through the guest agents.

Every server with dump sources at once; on one server its sources one after the other. A
command that fails becomes an error line in that server's profile (a drift probe then fails
naming it), never an exception: the probe run goes on.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ..errors import LabmgrError
from ..probes import profiling
from ..probes.plans import failed_command, guarded
from ..spec.model import Environment, Server

COMMAND_SECONDS = 120


def profiled_servers(env: Environment) -> list[Server]:
    return [s for s in env.servers if s.dumps]


def take_profiles(env: Environment, agent_for: Callable[[str], object]) -> dict[str, tuple[dict, float]]:
    """server -> (profile, seconds) for every server with dump sources."""
    servers = profiled_servers(env)
    if not servers:
        return {}
    with ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="profile") as pool:
        jobs = {s.name: pool.submit(_timed, s, agent_for) for s in servers}
        return {name: job.result() for name, job in jobs.items()}


def _timed(server: Server, agent_for: Callable[[str], object]) -> tuple[dict, float]:
    started = time.monotonic()
    profile: dict = {"tables": {}, "files": {}, "errors": []}
    try:
        profile_server(server, agent_for(server.name), profile)
    except LabmgrError as exc:
        profile["errors"].append(f"{server.name}: {exc}")
    return profile, round(time.monotonic() - started, 3)


def _run(agent, argv: list[str]):
    return agent.exec(guarded(argv, COMMAND_SECONDS), timeout=COMMAND_SECONDS + 10, stdin=None, env=None)


def profile_server(server: Server, agent, profile: dict) -> dict:
    for source in server.dumps:
        if source.kind == "postgres":
            result = _run(agent, profiling.postgres_argv(source.database))
            if result.ok:
                profile["tables"].update(profiling.parse_postgres(source.database, result.stdout))
            else:
                profile["errors"].append(failed_command(result, f"postgres {source.database} profile"))
        elif source.kind == "files":
            result = _run(agent, profiling.files_argv(source.path))
            try:
                if not result.ok:
                    raise ValueError(failed_command(result, f"files {source.path} profile"))
                profile["files"][source.name] = profiling.parse_files(source.path, result.stdout)
            except ValueError as exc:
                profile["errors"].append(str(exc))
    mariadb = sorted({d.database for d in server.dumps if d.kind == "mariadb"})
    if mariadb:
        listing = _run(agent, profiling.mariadb_tables_argv(mariadb))
        counts = profiling.mariadb_counts_argv(listing.stdout) if listing.ok else None
        result = _run(agent, counts) if counts else listing
        if result.ok:
            profile["tables"].update(profiling.parse_mariadb(result.stdout) if counts else {})
        else:
            profile["errors"].append(failed_command(result, "mariadb profile"))
    return profile
