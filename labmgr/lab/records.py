"""The lab record: ``<state>/labs/<lab>/lab.json``, next to the lab's overlays when the hypervisor
is local (a remote one keeps them in its storage: ``storage``).

The record is written before anything is created in libvirt and updated as
objects are made, so ``lab down`` and ``lab gc`` know what to remove even when
``lab up`` was killed halfway. States: creating -> up <-> restoring; failed; removing.

Whoever changes a lab holds its lock (``lab.lock``: ``lab up`` from the moment
the name is reserved, a restore, a probe, a teardown); a process's liveness is
judged by that lock, which the kernel releases when the process dies, never by
its pid. ``restoring`` with a free lock is a restore that was killed: the next
labmgr command puts the lab back at its previous point (``labmgr.recovery``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from .. import locks, paths
from ..atomic import atomic_write
from ..errors import LabError, NotFoundError

LAB_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
RECORD = "lab.json"
LOCK = "lab.lock"


@dataclass
class LabNetwork:
    name: str       # libvirt network name
    bridge: str


@dataclass
class LabServer:
    domain: str     # libvirt domain name
    hostname: str
    overlays: dict[str, str] = field(default_factory=dict)   # disk target -> overlay path
    nvram: str = ""         # the lab's own NVRAM copy ("" = none)
    points: str = "snapshot"    # how its points in time are kept: "snapshot" or "saved" (pointintime.py)
    saved: dict[str, dict] = field(default_factory=dict)     # point -> SavedPoint (points "saved")
    login: dict = field(default_factory=dict)   # its lab login {ip, port, user, key}: commands over SSH, no agent


@dataclass
class LabRecord:
    name: str
    environment: str
    hypervisor: str
    snapshot: str
    spec: str
    virt_type: str = ""
    state: str = "creating"
    pid: int = field(default_factory=os.getpid)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    error: str = ""
    networks: dict[str, LabNetwork] = field(default_factory=dict)
    servers: dict[str, LabServer] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    point: dict = field(default_factory=dict)     # the point in time the lab is at (lab restore)
    lease_until: str = ""                         # kept for people until then (lab gc --expired)
    storage: str = ""       # the lab's directory on the hypervisor's host: overlays, media ("": ``directory``)
    restoring: dict = field(default_factory=dict)  # the point a restore in progress is going to
    drill_lock: str = ""    # held by the drill (labmgr run) that made the lab: free and no lease = abandoned
    template: str = ""      # the warm template it was resumed from ("" = booted cold)

    def lease_expired(self, now: datetime) -> bool:
        return bool(self.lease_until) and datetime.fromisoformat(self.lease_until.replace("Z", "+00:00")) <= now

    @property
    def directory(self) -> Path:
        """The local directory: the record, locks, media being built."""
        return lab_dir(self.name)

    @property
    def host_directory(self) -> PurePosixPath:
        """The directory in hypervisor storage (the same one for a local hypervisor)."""
        return PurePosixPath(self.storage or self.directory)

    def save(self) -> None:
        """Write atomically (unique temp name, fsync, rename), one writer at a time."""
        with locks.hold(self.directory / f"{RECORD}.lock", f"lab record {self.name}", timeout=30):
            atomic_write(self.directory / RECORD, json.dumps(asdict(self), indent=2))

    @property
    def lock_path(self) -> Path:
        return self.directory / LOCK

    def in_use(self) -> bool:
        """Is a labmgr process (this one or another) working on the lab?"""
        return locks.held_here(self.lock_path) or locks.held_elsewhere(self.lock_path)

    def is_abandoned(self) -> bool:
        """Made by a process that is gone and never finished; or a drill's lab its dead drill left
        without a lease."""
        if self.state == "failed":
            return True
        if self.state in ("creating", "removing"):
            return not self.in_use()
        if self.state == "up" and self.drill_lock and not self.lease_until:
            return not (locks.held_here(self.drill_lock) or locks.held_elsewhere(self.drill_lock))
        return False

    def release(self) -> None:
        """Let go of the lock ``reserve`` took (``lab up`` is done, either way)."""
        held = getattr(self, "_held", None)
        if held is not None:
            held.close()
            self._held = None


def lab_dir(name: str) -> Path:
    return paths.labs_dir() / name


def check_name(name: str) -> str:
    if not LAB_NAME.match(name):
        raise LabError(f"'{name}' is not a usable lab name",
                       hint="use lower-case letters, digits and '-', starting with a letter, at most 40 characters")
    return name


@contextmanager
def lab_lock(name: str, timeout: float = 0):
    """Hold lab ``name``'s lock: restores, probes and teardowns of one lab take turns."""
    with locks.hold(lab_dir(name) / LOCK, f"lab {name}", timeout=timeout,
                    hint=f"a restore, probe or teardown of {name} is running; wait for it, then try again"):
        yield


def reserve(name: str | None, environment: str, taken=lambda candidate: False, **fields: object) -> LabRecord:
    """Claim a lab name by creating its directory (atomic), take its lock (held until
    ``release``) and write the first record. An automatic name skips names ``taken``
    says libvirt already uses (someone else's objects are never ours)."""
    candidates = [check_name(name)] if name else [f"{environment}-{n}" for n in range(1, 1000)]
    for candidate in candidates:
        if not name and taken(candidate):
            continue
        try:
            os.mkdir(lab_dir(candidate))
        except FileExistsError:
            if name:
                raise LabError(f"lab '{name}' already exists",
                               hint=f"choose another --name, or remove it with 'labmgr lab down {name}'") from None
            continue
        held = ExitStack()
        held.enter_context(lab_lock(candidate))     # before the record: gc never takes it for a dead one
        paths.make_traversable(lab_dir(candidate))
        record = LabRecord(name=candidate, environment=environment, **fields)  # type: ignore[arg-type]
        record._held = held
        record.save()
        return record
    raise LabError(f"no free lab name for environment {environment}")


def load(name: str) -> LabRecord:
    path = lab_dir(name) / RECORD
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFoundError(f"no lab named '{name}'", hint="'labmgr lab list' shows the labs") from None
    except (OSError, ValueError) as exc:
        raise LabError(f"lab record {path} is unreadable: {exc}", hint="'labmgr lab gc' removes broken labs") from None
    try:
        data["networks"] = {k: LabNetwork(**v) for k, v in data.get("networks", {}).items()}
        data["servers"] = {k: LabServer(**v) for k, v in data.get("servers", {}).items()}
        known = {f.name for f in fields(LabRecord)}
        # a record written by another labmgr version: keep what this one knows
        return LabRecord(**{k: v for k, v in data.items() if k in known})
    except (TypeError, AttributeError) as exc:
        raise LabError(f"lab record {path} is unreadable: {exc}", hint="'labmgr lab gc' removes broken labs") from None


def all_records() -> list[LabRecord]:
    out = []
    for directory in sorted(paths.labs_dir().iterdir()):
        if (directory / RECORD).is_file():
            try:
                out.append(load(directory.name))
            except LabError:
                continue
    return out


def lab_dirs() -> list[Path]:
    return sorted(d for d in paths.labs_dir().iterdir() if d.is_dir())


def remove_dir(name: str) -> None:
    shutil.rmtree(lab_dir(name), ignore_errors=True)

