"""Run probes in a lab's guests through the guest agent: ``run_probes``.

Probes run concurrently on a thread pool; probes on one server are bounded to
``PER_SERVER`` at a time (the agent serialises guest-exec poorly and the guest
is small). Each probe runs inside coreutils ``timeout`` in the guest and is
also bounded on the host side; a probe whose agent is silent, or that errors
in any other way, becomes a failed result naming the error, never an exception.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from ..errors import LabmgrError, NotFoundError
from ..hypervisor.agent import ExecResult
from ..spec.model import Environment
from ..timeparse import format_point, parse_point
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
               agent_for: Callable[[str], object] | None = None, now: datetime | None = None) -> list[ProbeResult]:
    """Run ``probes`` (or those named by ``only``) in the lab ``record``; results in the probes' order.

    ``agent_for(server_name)`` gives the guest agent of that server's lab domain (anything with
    ``exec(argv, timeout, stdin, env) -> ExecResult``); by default it is looked up through libvirt.
    """
    chosen = select(probes, only)
    context = Context(env=env, point=lab_point(record), now=now)
    history = History.of(record)
    context.previous = history.previous(context.point or now or datetime.now(timezone.utc),
                                        [p.name for p in chosen if p.kind == "compare_previous"])
    if agent_for is None:
        results = _with_libvirt(record, lambda agents: _run_all(chosen, context, agents))
    else:
        results = _run_all(chosen, context, _cached(agent_for))
    if context.recorded:
        history.save(context.point or now or datetime.now(timezone.utc), context.recorded)
    return results


class History:
    """Values compare_previous probes read, per lab point in time: ``<lab dir>/probe-history.json``,
    ``{probe: {point: value}}``."""

    FILE = "probe-history.json"

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @classmethod
    def of(cls, record) -> "History":
        directory = getattr(record, "directory", None)
        return cls(Path(directory) / cls.FILE if directory is not None else None)

    def load(self) -> dict[str, dict[str, str]]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def previous(self, point: datetime, names: list[str]) -> dict[str, tuple[str, str]]:
        """For each name: (point, value) of its latest value at a point strictly before ``point``."""
        data = self.load()
        out = {}
        for name in names:
            earlier = []
            for text, value in (data.get(name) or {}).items():
                try:
                    moment = parse_point(text)
                except LabmgrError:
                    continue
                if moment < point:
                    earlier.append((moment, text, value))
            if earlier:
                _, text, value = max(earlier)
                out[name] = (text, value)
        return out

    def save(self, point: datetime, values: dict[str, str]) -> None:
        if self.path is None:
            return
        data = self.load()
        for name, value in values.items():
            data.setdefault(name, {})[format_point(point)] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, self.path)


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
            return hypervisor.domain(lab_server.domain).agent(timeout=10)
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
        return ProbeResult(name=probe.name, server=probe.server, kind=probe.kind, severity=probe.severity,
                           passed=passed, seconds=round(time.monotonic() - started, 3), detail=detail,
                           output_tail=output)


def _tail(result: ExecResult, lines: int = TAIL_LINES) -> str:
    text = result.stdout.rstrip("\n")
    if result.stderr.strip():
        text = (text + "\n" if text else "") + result.stderr.rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])
