"""Names of the libvirt objects of a lab."""

from __future__ import annotations

import hashlib
from pathlib import Path

BRIDGE_PREFIX = "lmb"
IFNAMSIZ = 15


def domain_name(lab: str, server: str) -> str:
    return f"{lab}-{server}"


def network_name(lab: str, network: str) -> str:
    return f"{lab}-{network}"


def bridge_name(lab: str, network: str, taken: set[str]) -> str:
    """A bridge name of at most 15 characters, unique on this host.

    Derived from a hash of the lab and network names, so it is stable, and
    salted until it collides with no existing interface or libvirt bridge.
    """
    existing = taken | {p.name for p in Path("/sys/class/net").glob("*")}
    for salt in range(100):
        digest = hashlib.sha256(f"{lab}/{network}/{salt}".encode()).hexdigest()
        name = f"{BRIDGE_PREFIX}{digest[:IFNAMSIZ - len(BRIDGE_PREFIX) - 1]}"
        if name not in existing:
            return name
    raise RuntimeError("no free bridge name")  # 100 collisions of a 44-bit hash: not in this universe
