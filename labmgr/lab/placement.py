"""Where a lab goes: the first hypervisor of the spec with enough free memory and disk.

Memory: the sum of the lab's domains' memory against what the host has free
(free memory plus what page cache and buffers would give back). Disk, in the
site's storage directory: twice that memory (the clean and the previous internal
snapshots keep each guest's memory in its overlay) plus a margin for the overlays
to grow, plus the snapshot's size where it has to be copied first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import LabError, LabmgrError
from ..progress import SILENT, Reporter
from ..snapshot import Snapshot
from ..spec import Environment
from ..spec.model import HypervisorSite
from ..xml.builder import DomainXML

GiB = 2**30
MARGIN = 1 * GiB


@dataclass(frozen=True)
class Need:
    memory: int         # bytes of guest memory
    disk: int           # bytes of storage for the overlays
    snapshot: int       # bytes of the snapshot, where it must be copied first


@dataclass(frozen=True)
class Room:
    site: HypervisorSite
    where: str = ""             # its storage directory
    memory: int = 0             # bytes available
    disk: int = 0               # bytes free in its storage directory
    has_snapshot: bool = False
    error: LabmgrError | None = None    # it could not be asked

    def shortfall(self, need: Need) -> str:
        """Why the lab does not fit here ('' if it does)."""
        if self.error is not None:
            return str(self.error)
        disk = need.disk + (0 if self.has_snapshot else need.snapshot)
        short = []
        if self.memory < need.memory:
            short.append(f"{gib(self.memory)} memory free, the lab needs {gib(need.memory)}")
        if self.disk < disk:
            copy = "" if self.has_snapshot else " with a copy of the snapshot"
            short.append(f"{gib(self.disk)} disk free in {self.where}, the lab "
                         f"needs {gib(disk)}{copy}")
        return "; ".join(short)


def gib(size: int) -> str:
    return f"{size / GiB:.1f} GiB"


def lab_need(env: Environment, snapshot: Snapshot) -> Need:
    memory = 0
    for server in env.servers:
        if server.memory:
            memory += server.memory * 2**20
        else:
            memory += DomainXML(snapshot.file(snapshot.servers[server.name].xml).read_text()).memory_bytes()
    return Need(memory=memory, disk=2 * memory + MARGIN, snapshot=snapshot.size())


def choose(sites: Iterable[HypervisorSite], need: Need, survey: Callable[[HypervisorSite], Room],
           reporter: Reporter = SILENT) -> Room:
    """The first site with room, asking each only when the ones before it are full."""
    tried: list[Room] = []
    for site in sites:
        room = survey(site)
        why = room.shortfall(need)
        if not why:
            return room
        tried.append(room)
        reporter.note(f"not on {site.uri}: {why}")
    if len(tried) == 1 and tried[0].error is not None:
        raise tried[0].error            # one hypervisor: its own clear error
    if not tried:
        raise LabError("the spec lists no hypervisor that takes labs", hint="set labs: true on one")
    raise LabError("no hypervisor has room for the lab: " + "; ".join(
        f"{room.site.uri}: {room.shortfall(need)}" for room in tried),
        hint="remove a lab ('labmgr lab list'), or add a hypervisor to the spec")


def survey(site: HypervisorSite, snapshot: Snapshot) -> Room:
    """Ask a hypervisor how much room it has (and whether the snapshot is there already)."""
    from ..hosts import host_for
    from ..hypervisor import connect
    from ..snapshot.replicate import has_copy
    from ..storage import storage_root

    root = storage_root(site)
    try:
        with connect(site.uri) as hypervisor, host_for(site.uri) as host:
            return Room(site, str(root), hypervisor.available_memory(), host.free_bytes(root),
                        site.uri in snapshot.locations() or has_copy(host, snapshot, root))
    except LabmgrError as exc:
        return Room(site, str(root), error=exc)


def place(env: Environment, snapshot: Snapshot, reporter: Reporter = SILENT) -> HypervisorSite:
    """The hypervisor a new lab of ``env`` goes to."""
    need = lab_need(env, snapshot)
    sites = [site for site in env.hypervisors if site.labs]
    return choose(sites, need, lambda site: survey(site, snapshot), reporter).site
