"""A lab VM's points in time: the one abstraction restores, lab up and templates call.

Right after ``lab up`` every lab VM has ``labmgr-clean``: the freshly booted (or
freshly resumed) guest, memory included. Every restore reverts to it first, so
a point in time is always "clean clone + that hour's dumps", never layered on
another hour. Before a restore touches anything, each VM also gets
``labmgr-previous``; if anything fails the whole lab goes back to it.

Two ways keep a point, chosen per VM (``LabServer.points``) and measured in
``bench/instant.py``:

- ``saved``: a saved running state and read-only disk layers
  (``savedstate.py``). An instant lab's clean point is its template's state; a
  firmware (pflash/UEFI) VM can only use this one: libvirt 9 refuses internal
  snapshots of VMs with pflash firmware.
- ``snapshot``: libvirt internal snapshots with memory, in the qcow2 overlays.

Callers use ``points_of(...)`` and its ``take``/``revert``/``drop``; ``revert``
returns the domain (a resumed VM is a new libvirt handle).
"""

from __future__ import annotations

import os
import threading
from pathlib import PurePosixPath

from ..errors import AgentError, LabError
from ..hypervisor import Domain, Hypervisor
from ..xml.builder import DomainXML, snapshot_xml
from . import savedstate
from .guestchannel import channel_for, wait_ready
from .records import LabRecord

CLEAN = "labmgr-clean"
PREVIOUS = "labmgr-previous"
SAVED, SNAPSHOT = "saved", "snapshot"
_FILE_NAMES = {CLEAN: "clean", PREVIOUS: "previous"}
_RECORD_LOCK = threading.Lock()      # servers revert in parallel threads; one writer of lab.json at a time


def choose_kind(domain_xml: str) -> str:
    """How a cold lab VM keeps its points: saved states when it boots from pflash firmware (no
    internal snapshots there), else ``LABMGR_CLEAN_POINT`` or the measured default."""
    domain = DomainXML(domain_xml)
    loader = domain.root.find("os/loader")
    if domain.firmware() == "efi" or (loader is not None and loader.get("type") == "pflash"):
        return SAVED        # <os firmware='efi'>: libvirt picks OVMF, in pflash, at start
    wanted = os.environ.get("LABMGR_CLEAN_POINT", DEFAULT_KIND)
    return wanted if wanted in (SAVED, SNAPSHOT) else DEFAULT_KIND


DEFAULT_KIND = SNAPSHOT  # a BIOS VM booted cold keeps today's internal snapshots (bench/instant.py compares both)


class InternalSnapshots:
    """Points as libvirt internal snapshots (memory and disks in the qcow2 overlays)."""

    def __init__(self, domain: Domain, channel_of=None) -> None:
        self.domain = domain
        self.channel_of = channel_of        # domain -> its guest command channel (default: its agent)

    def take(self, point: str) -> None:
        self.drop(point)
        self.domain.create_snapshot(snapshot_xml(point, f"labmgr: {_FILE_NAMES[point]} point"))

    def revert(self, point: str) -> Domain:
        self.domain.revert_to_snapshot(point)
        return settle(self.domain, channel=self.channel_of(self.domain) if self.channel_of else None)

    def drop(self, point: str) -> None:
        if point in self.domain.snapshot_names():
            self.domain.delete_snapshot(point)

    def has(self, point: str) -> bool:
        return point in self.domain.snapshot_names()


class SavedStates:
    """Points as saved running states over read-only disk layers, in the VM's lab folder."""

    def __init__(self, hypervisor: Hypervisor, host, record: LabRecord, server: str) -> None:
        self.hypervisor, self.host, self.record = hypervisor, host, record
        self.server = record.servers[server]
        self.server_name = server
        self.folder = record.host_directory / server

    @property
    def domain(self) -> Domain:
        return self.hypervisor.domain(self.server.domain)

    def take(self, point: str) -> None:
        self.drop(point)
        # recorded before the save: a take killed midway is finished or undone by ``has``
        planned = savedstate.plan_point(self.folder, _FILE_NAMES[point], self.server.overlays, self.server.nvram)
        self._remember(point, planned)
        saved = savedstate.save_planned(self.host, self.domain, planned, self.server.overlays, self.server.nvram)
        self._remember(point, saved)
        self._resume(saved)

    def revert(self, point: str) -> Domain:
        # destroyed, then resumed: killed in between, the VM is off and the record still names
        # the point, so reverting again (``interrupted.settle``) resumes it
        self.domain.destroy()
        return self._resume(savedstate.SavedPoint.from_dict(self.server.saved[point]))

    def has(self, point: str) -> bool:
        """Whether the VM can be reverted to ``point``. A take that was killed is settled first:
        the VM still running never left its point (the planned point is dropped); a VM stopped by
        its save has the state written (libvirt stops it only then), so the save is finished."""
        if point not in self.server.saved:
            return False
        saved = savedstate.SavedPoint.from_dict(self.server.saved[point])
        if saved.complete:
            return True
        if self.domain.is_active():
            self.drop(point)
            return False
        if not self.host.exists(saved.state):
            raise LabError(f"domain '{self.server.domain}' is off and its point {point} was never saved",
                           hint=f"'labmgr lab down {self.record.name}' and bring the lab up again")
        self._remember(point, savedstate.finish_save(self.host, saved, self.server.overlays, self.server.nvram))
        return True

    def drop(self, point: str) -> None:
        if point in self.server.saved:
            savedstate.drop(self.host, savedstate.SavedPoint.from_dict(self.server.saved[point]))
            self._remember(point, None)
        self._sweep()

    def _sweep(self) -> None:
        """Remove the layers in the VM's folder that no overlay and no point stands on (after going
        back to the previous point its layer stays under the overlay until the next clean revert)."""
        used: set[str] = set()
        for image in [*self.server.overlays.values(),
                      *(layer for point in self.server.saved.values() for layer in point["layers"].values())]:
            used |= {image, *savedstate.backing_chain(self.host, image)}
        listing = self.host.run(["ls", "-1", "--", str(self.folder)], check=False)
        for name in listing.stdout.split() if listing.ok else []:
            if name.endswith(".qcow2") and str(self.folder / name) not in used:
                self.host.remove_file(self.folder / name)

    def _resume(self, saved: savedstate.SavedPoint) -> Domain:
        domain = savedstate.resume(self.hypervisor, self.host, saved, self.server.domain,
                                   self.server.overlays, self.server.nvram)
        return settle(domain, reseed=True, channel=channel_for(domain, self.record, self.server_name))

    def _remember(self, point: str, saved: savedstate.SavedPoint | None) -> None:
        with _RECORD_LOCK:
            if saved is None:
                self.server.saved.pop(point, None)
            else:
                self.server.saved[point] = saved.to_dict()
            self.record.save()


def points_of(hypervisor: Hypervisor, host, record: LabRecord, server: str):
    """The points keeper of one lab VM (``server`` is the spec's server name)."""
    if record.servers[server].points == SAVED:
        return SavedStates(hypervisor, host, record, server)
    return InternalSnapshots(hypervisor.domain(record.servers[server].domain),
                             lambda domain: channel_for(domain, record, server))


def settle(domain: Domain, reseed: bool = False, channel=None) -> Domain:
    """After a revert or resume: wait for the guest (its agent, or its sshd), bring the guest clock to
    now (it resumes in the past) and, for a state other VMs resumed too, mix fresh host randomness
    into its RNG."""
    agent = channel or domain.agent(timeout=10)
    wait_ready(agent, domain, timeout=60, poll=0.1)
    agent.set_time()
    if reseed:
        agent.run(["sh", "-c", "cat > /dev/urandom"], stdin=os.urandom(512))
    return domain


def check_agents(domains: list[Domain], record: LabRecord | None = None, servers: list[str] = ()) -> None:
    """Refuse to start when a guest (its agent or its lab login) is silent: the lab is then left
    exactly as it was. ``servers`` are the spec names of ``domains`` (with ``record``)."""
    for domain, server in zip(domains, servers or [None] * len(domains)):
        channel = channel_for(domain, record, server) if record and server else domain.agent()
        if not channel.ping(timeout=5):
            raise AgentError(f"guest '{domain.name}' does not answer (agent or lab login); the lab was left as it was",
                             hint="'labmgr lab down' and up again, or check the guest on its console")


def layer_paths(record: LabRecord) -> list[PurePosixPath]:
    """Every file a lab's saved points keep (for tests and lab show)."""
    return [PurePosixPath(p) for s in record.servers.values() for point in s.saved.values()
            for p in [*point["layers"].values(), *([point["state"]] if not point["header"] else [])]]
