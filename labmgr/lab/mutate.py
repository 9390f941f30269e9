"""``labmgr probe LAB --mutate``: how much the probes would catch.

The lab's servers get ``labmgr-previous`` (the snapshot a failed restore
reverts to); the probes run once at the lab's point (the baseline). Then, for
each damage of ``probes.damages`` built from the probes, one at a time: the
damage is made in the guest, every probe runs, and the damaged server reverts
to ``labmgr-previous``. A damage is *caught* when a probe that passed at the
baseline fails after it. At the end the lab is back at its point, the
snapshots are dropped, and the probes are run again: the results must be the
baseline's. While it runs, the lab record says so (``point.mutating``), so a
killed run is never mistaken for a clean point.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from ..errors import LabError, LabmgrError
from ..history import history_for, now
from ..hosts import host_for
from ..hypervisor import connect
from ..probes import load_probes
from ..probes.damages import Damage, damages_for
from ..progress import SILENT, Reporter
from ..spec import load_environment
from . import records
from .guestchannel import channel_for
from .pointintime import PREVIOUS, check_agents, points_of
from .probing import probe_lab, probe_with_profiles


@dataclass
class Outcome:
    damage: Damage
    applied: bool
    caught_by: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def caught(self) -> bool:
        return bool(self.caught_by)


@dataclass
class MutationScore:
    lab: str
    point: str
    outcomes: list[Outcome] = field(default_factory=list)
    baseline: dict[str, bool] = field(default_factory=dict)
    after: dict[str, bool] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def applied(self) -> int:
        return sum(1 for o in self.outcomes if o.applied)

    @property
    def caught(self) -> int:
        return sum(1 for o in self.outcomes if o.applied and o.caught)

    @property
    def blind(self) -> list[str]:
        return [f"nothing notices when {o.damage.description} (on {o.damage.server})"
                for o in self.outcomes if o.applied and not o.caught]

    @property
    def score(self) -> float:
        return self.caught / self.applied if self.applied else 0.0

    @property
    def restored(self) -> bool:
        """The probes answer at the end exactly as they did before any damage."""
        return self.after == self.baseline


def mutate_lab(name: str, probes_file: Path, only: list[str] | None = None,
               reporter: Reporter = SILENT) -> MutationScore:
    record = records.load(name)
    if record.state != "up":
        raise LabError(f"lab {name} is {record.state}, not up", hint=f"'labmgr lab show {name}'")
    if record.point.get("mutating"):
        raise LabError(f"lab {name} was left damaged by a mutation test that did not finish",
                       hint=f"restore it to a point first: 'labmgr lab restore {name} --at ...'")
    env = load_environment(record.spec)
    probes = load_probes(probes_file, env)
    chosen = [p for p in probes if not only or p.name in only]
    damages = _unique(d for probe in chosen for d in damages_for(probe, env))
    score = MutationScore(name, record.point.get("at", ""))
    begun = time.monotonic()
    with FileLock(str(record.directory / "restore.lock"), timeout=0), connect(record.hypervisor) as hypervisor, \
            host_for(record.hypervisor) as host:
        domains = {server: hypervisor.domain(lab.domain) for server, lab in record.servers.items()}
        keepers = {server: points_of(hypervisor, host, record, server) for server in record.servers}
        check_agents(list(domains.values()), record, list(domains))
        score.baseline = _verdicts(probe_lab(name, probes_file, only).results)
        with reporter.step("snapshot the lab's point", total=len(domains)) as step:
            for keeper in keepers.values():
                keeper.take(PREVIOUS)
                step.advance()
        _mark(record, True)
        try:
            with reporter.step(f"{len(damages)} damages", total=len(damages)) as step:
                for damage in damages:
                    score.outcomes.append(_one(damage, record, env, chosen, domains, keepers, score.baseline))
                    step.advance()
        finally:
            for keeper in keepers.values():
                keeper.drop(PREVIOUS)
        _mark(record, False)
    score.after = _verdicts(probe_lab(name, probes_file, only).results)
    score.seconds = round(time.monotonic() - begun, 2)
    _record(env, score)
    return score


SCHEMA = """
CREATE TABLE IF NOT EXISTS history_mutations (
    id INTEGER PRIMARY KEY, lab TEXT NOT NULL, environment TEXT NOT NULL, point TEXT NOT NULL, at TEXT NOT NULL,
    caught INTEGER NOT NULL, applied INTEGER NOT NULL, restored INTEGER NOT NULL, seconds REAL NOT NULL,
    damages TEXT NOT NULL);
"""


def _record(env, score: MutationScore) -> None:
    damages = [{"server": o.damage.server, "damage": o.damage.description, "applied": o.applied,
                "caught_by": o.caught_by, "error": o.error} for o in score.outcomes]
    with history_for(env) as history, history.db:
        history.db.executescript(SCHEMA)
        history.db.execute("INSERT INTO history_mutations (lab, environment, point, at, caught, applied, restored, "
                           "seconds, damages) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (score.lab, env.name, score.point, now(), score.caught, score.applied,
                            int(score.restored), score.seconds, json.dumps(damages)))


def mutations(env, lab: str, since: str = "") -> list[dict]:
    """The mutation tests recorded for ``lab`` (for its report), oldest first."""
    with history_for(env) as history:
        history.db.executescript(SCHEMA)
        rows = history.db.execute("SELECT point, at, caught, applied, restored, seconds, damages FROM "
                                  "history_mutations WHERE lab = ? AND environment = ? AND at >= ? ORDER BY id",
                                  (lab, env.name, since)).fetchall()
    out = []
    for point, at, caught, applied, restored, seconds, damages in rows:
        listed = json.loads(damages)
        out.append({"point": point, "at": at, "caught": caught, "applied": applied, "restored": bool(restored),
                    "seconds": seconds, "damages": listed,
                    "blind": [d["damage"] + f" (on {d['server']})" for d in listed
                              if d["applied"] and not d["caught_by"]]})
    return out


def _one(damage: Damage, record, env, probes: list, domains: dict, keepers: dict,
         baseline: dict[str, bool]) -> Outcome:
    domain = domains.get(damage.server)
    if domain is None:
        return Outcome(damage, False, error=f"lab {record.name} has no server {damage.server}")
    try:
        try:
            result = channel_for(domain, record, damage.server, timeout=30).exec(list(damage.argv), timeout=120)
        except LabmgrError as exc:      # not made (or not known to be): not counted; the revert below still runs
            return Outcome(damage, False, error=str(exc))
        if not result.ok:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [f"exit {result.exit_code}"]
            return Outcome(damage, False, error=tail[0])
        after = _verdicts(probe_with_profiles(domain.hypervisor, record, env, probes)[0])
        return Outcome(damage, True, [n for n, passed in after.items() if baseline.get(n) and not passed])
    finally:
        # as a failed restore does: the server is back at the lab's point (a resumed VM: a new handle)
        domains[damage.server] = keepers[damage.server].revert(PREVIOUS)


def _verdicts(results) -> dict[str, bool]:
    return {r.name: r.passed for r in results}


def _unique(damages) -> list[Damage]:
    seen: dict[str, Damage] = {}
    for damage in damages:
        seen.setdefault(damage.key, damage)
    return list(seen.values())


def _mark(record, mutating: bool) -> None:
    if mutating:
        record.point["mutating"] = f"damaged by 'probe --mutate' (pid {os.getpid()}) until it reverts"
    else:
        record.point.pop("mutating", None)
    record.save()
