"""Internal snapshots that make switching between points in time fast and safe.

Right after ``lab up`` every lab VM gets ``labmgr-clean``: a snapshot with
memory of the freshly booted guest. Every restore reverts to it first, so a
point in time is always "clean clone + that hour's dumps", never layered on
another hour. Before a restore touches anything, each VM also gets
``labmgr-previous``; if anything fails the whole lab goes back to it.
"""

from __future__ import annotations

from ..errors import AgentError
from ..hypervisor import Domain
from ..xml.builder import snapshot_xml

CLEAN = "labmgr-clean"
PREVIOUS = "labmgr-previous"


def take_clean_snapshot(domain: Domain) -> None:
    domain.create_snapshot(snapshot_xml(CLEAN, "labmgr: the lab VM right after boot"))


def take_previous(domain: Domain) -> None:
    drop_previous(domain)
    domain.create_snapshot(snapshot_xml(PREVIOUS, "labmgr: the point in time before a restore"))


def drop_previous(domain: Domain) -> None:
    if PREVIOUS in domain.snapshot_names():
        domain.delete_snapshot(PREVIOUS)


def revert(domain: Domain, name: str) -> None:
    """Revert and bring the guest clock back to now (it resumes with the snapshot's time)."""
    domain.revert_to_snapshot(name)
    agent = domain.agent(timeout=10)
    agent.wait_ready(timeout=60, poll=0.2)
    agent.set_time()


def check_agents(domains: list[Domain]) -> None:
    """Refuse to start when a guest agent is silent: the lab is then left exactly as it was."""
    for domain in domains:
        if not domain.agent().ping(timeout=5):
            raise AgentError(f"guest agent of '{domain.name}' does not answer; the lab was left as it was",
                             hint="'labmgr lab down' and up again, or check the guest on its console")
