"""Internal snapshots that make switching between points in time fast and safe.

Right after ``lab up`` every lab VM gets ``labmgr-clean``: a snapshot with
memory of the freshly booted guest. Every restore reverts to it first, so a
point in time is always "clean clone + that hour's dumps", never layered on
another hour. Before a restore touches anything, each VM also gets
``labmgr-previous``; if anything fails the whole lab goes back to it.

A VM with UEFI firmware in pflash cannot have internal snapshots (libvirt 9.0):
its points are saved running state plus copies of its overlays and NVRAM
(``savedpoints.py``), under the same names and with the same behaviour.
"""

from __future__ import annotations

from ..errors import AgentError
from ..hypervisor import Domain
from ..xml.builder import snapshot_xml
from . import savedpoints

CLEAN = "labmgr-clean"
PREVIOUS = "labmgr-previous"


def take_clean_snapshot(domain: Domain) -> None:
    _take(domain, CLEAN, "labmgr: the lab VM right after boot")


def take_previous(domain: Domain) -> None:
    drop_previous(domain)
    _take(domain, PREVIOUS, "labmgr: the point in time before a restore")


def _take(domain: Domain, name: str, description: str) -> None:
    if domain.has_pflash():
        savedpoints.take(domain, name)
        _resync_clock(domain)
    else:
        domain.create_snapshot(snapshot_xml(name, description))


def drop_previous(domain: Domain) -> None:
    if domain.has_pflash():
        savedpoints.drop(domain, PREVIOUS)
    elif PREVIOUS in domain.snapshot_names():
        domain.delete_snapshot(PREVIOUS)


def revert(domain: Domain, name: str) -> None:
    """Revert and bring the guest clock back to now (it resumes with the snapshot's time)."""
    if domain.has_pflash():
        savedpoints.revert(domain, name)
    else:
        domain.revert_to_snapshot(name)
    _resync_clock(domain)


def _resync_clock(domain: Domain) -> None:
    agent = domain.agent(timeout=10)
    agent.wait_ready(timeout=60, poll=0.2)
    agent.set_time()


def check_agents(domains: list[Domain]) -> None:
    """Refuse to start when a guest agent is silent: the lab is then left exactly as it was."""
    for domain in domains:
        if not domain.agent().ping(timeout=5):
            raise AgentError(f"guest agent of '{domain.name}' does not answer; the lab was left as it was",
                             hint="'labmgr lab down' and up again, or check the guest on its console")
