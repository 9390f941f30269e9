"""Run probes in a lab's guests through their command channels (the guest agent, or a lab login
over SSH: ``lab/guestchannel.py``): ``run_probes``.

Probes run concurrently on a thread pool; probes on one server are bounded to
``PER_SERVER`` at a time (the agent serialises guest-exec poorly and the guest
is small). Each probe runs inside coreutils ``timeout`` in the guest and is
also bounded on the host side; a probe whose agent is silent, or that errors
in any other way, becomes a failed result naming the error, never an exception.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from ..errors import LabmgrError, NotFoundError
from ..hypervisor.agent import ExecResult
from ..lab.guestchannel import channel_for
from ..spec.model import Environment
from ..timeparse import parse_point
from .checks import Context, guarded, plan
from .result import ProbeResult

PER_SERVER = 4
MAX_WORKERS = 16
TAIL_LINES = 20
GRACE = 10        # seconds the host waits beyond a probe's timeout (the guest kills it at the timeout)


def lab_point(record) -> datetime | None:
    """The point in time the lab was restored to, if any."""
    at = (getattr(record, "point", None) or {}).get("at")
    return parse_point(at) if at else None


def select(probes: list, only: str | Iterable[str] | None) -> list:
    if only is None:
        return list(probes)
    names = [only] if isinstance(only, str) else list(only)
    known = {p.name for p in probes}
    for name in names:
        if name not in known:
            raise NotFoundError(f"no probe named '{name}'", hint=f"probes: {', '.join(sorted(known))}")
    return [p for p in probes if p.name in names]


def run_probes(record, env: Environment, probes: list, *, only: str | Iterable[str] | None = None,
               agent_for: Callable[[str], object] | None = None, now: datetime | None = None,
               previous: dict[str, tuple[str, str]] | None = None, profiles: dict[str, dict] | None = None,
               previous_profiles: dict[str, tuple[str, dict]] | None = None) -> list[ProbeResult]:
    """Run ``probes`` (or those named by ``only``) in the lab ``record``; results in the probes' order.

    ``agent_for(server_name)`` gives the guest agent of that server's lab domain (anything with
    ``exec(argv, timeout, stdin, env) -> ExecResult``); by default it is looked up through libvirt.
    ``previous`` is what compare_previous probes compare with: {probe: (point, value)} read at
    the latest earlier point (``History.previous_values``); a result's ``value`` is what it read.
    ``profiles`` / ``previous_profiles`` are what drift probes compare (``lab/profiler.py``).
    """
    chosen = select(probes, only)
    context = Context(env=env, point=lab_point(record), now=now, previous=dict(previous or {}),
                      profiles=dict(profiles or {}), previous_profiles=dict(previous_profiles or {}))
    if agent_for is None:
        return _with_libvirt(record, lambda agents: _run_all(chosen, context, agents))
    return _run_all(chosen, context, _cached(agent_for))


def _cached(agent_for: Callable[[str], object]) -> Callable[[str], object]:
    agents: dict[str, object] = {}
    lock = threading.Lock()

    def get(server: str) -> object:
        with lock:
            if server not in agents:
                agents[server] = agent_for(server)
            return agents[server]
    return get


def _with_libvirt(record, run: Callable[[Callable[[str], object]], list[ProbeResult]]) -> list[ProbeResult]:
    from ..hypervisor import connect

    with connect(record.hypervisor) as hypervisor:
        def agent_for(server: str):
            lab_server = record.servers.get(server)
            if lab_server is None:
                raise NotFoundError(f"lab {record.name} has no server '{server}'")
            return channel_for(hypervisor.domain(lab_server.domain), record, server, timeout=10)
        return run(_cached(agent_for))


def _run_all(probes: list, context: Context, agent_for: Callable[[str], object]) -> list[ProbeResult]:
    if not probes:
        return []
    limits: dict[str, threading.Semaphore] = {p.server: threading.Semaphore(PER_SERVER) for p in probes}
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(probes)), thread_name_prefix="probe") as pool:
        futures = [pool.submit(_run_one, p, context, agent_for, limits[p.server]) for p in probes]
        return [f.result() for f in futures]


def _run_one(probe, context: Context, agent_for: Callable[[str], object],
             limit: threading.Semaphore) -> ProbeResult:
    with limit:
        started = time.monotonic()
        output = ""
        try:
            step = plan(probe, context)
            if not step.argv:
                passed, detail = step.evaluate(ExecResult(0, "", ""))
                return _result(probe, passed, detail, started, "", context)
            agent = agent_for(probe.server)
            result: ExecResult = agent.exec(guarded(step.argv, probe.timeout), timeout=probe.timeout + GRACE,
                                            stdin=step.stdin, env=None)
            output = _tail(result)
            if result.exit_code == 124 and probe.kind not in ("tcp", "http"):
                passed, detail = False, f"did not finish within {probe.timeout:g} s (killed)"
            else:
                passed, detail = step.evaluate(result)
        except LabmgrError as exc:
            passed, detail = False, f"error: {exc}"
        except Exception as exc:     # a probe must never take the others down
            passed, detail = False, f"error: {type(exc).__name__}: {exc}"
        return _result(probe, passed, detail, started, output, context)


def _result(probe, passed: bool, detail: str, started: float, output: str, context: Context) -> ProbeResult:
    return ProbeResult(name=probe.name, server=probe.server, kind=probe.kind, severity=probe.severity,
                       passed=passed, seconds=round(time.monotonic() - started, 3), detail=detail,
                       output_tail=output, value=context.recorded.get(probe.name))


def _tail(result: ExecResult, lines: int = TAIL_LINES) -> str:
    text = result.stdout.rstrip("\n")
    if result.stderr.strip():
        text = (text + "\n" if text else "") + result.stderr.rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])
