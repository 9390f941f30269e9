"""What labs exist and what state they are in (lab list / lab show)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import LabmgrError, NotFoundError
from ..hypervisor import connect
from . import records
from .hypervisors import known_hypervisors
from .records import LabRecord
from .teardown import tagged_objects


@dataclass
class LabStatus:
    name: str
    environment: str
    hypervisor: str
    state: str                      # the record's state, or "orphaned" (objects but no record)
    snapshot: str = ""
    created_at: str = ""
    domains: dict[str, str] = field(default_factory=dict)   # domain -> libvirt state
    networks: list[str] = field(default_factory=list)
    record: LabRecord | None = None


def point_of(record: LabRecord) -> dict:
    """Which point in time a lab is at, since when, and how it got there (lab show)."""
    point = record.point
    if not point.get("at"):
        return {"at": None, "kind": "clean", "since": record.created_at,
                "how": f"clean clone of snapshot {record.snapshot}, no dumps restored",
                "dumps": {}, "skew_seconds": 0.0, "requested": None}
    return {"at": point["at"], "kind": "restored", "since": point.get("restored_at", ""),
            "how": f"restored '{point.get('requested', point['at'])}' onto the clean clone of snapshot "
                   f"{record.snapshot}", "dumps": dict(point.get("dumps", {})),
            "skew_seconds": point.get("skew_seconds", 0.0), "requested": point.get("requested")}


def list_labs(extra_uris: list[str] = (), unreachable: list[tuple[str, str]] | None = None) -> list[LabStatus]:
    """Every lab on every known hypervisor (``labmgr.lab.hypervisors``); those that cannot be
    reached are listed in ``unreachable`` and their labs shown from their records alone."""
    return _statuses(records.all_records(), known_hypervisors(list(extra_uris)), unreachable)


def show_lab(name: str) -> LabStatus:
    try:
        record = records.load(name)
    except NotFoundError:
        record = None
    # a lab with a record is on its record's hypervisor; an orphan may be on any
    uris = [record.hypervisor] if record else known_hypervisors(["qemu:///system"])
    for status in _statuses([record] if record else [], uris):
        if status.name == name:
            return status
    raise NotFoundError(f"no lab named '{name}'", hint="'labmgr lab list' shows the labs")


def _statuses(known: list[LabRecord], uris: list[str],
              unreachable: list[tuple[str, str]] | None = None) -> list[LabStatus]:
    found: dict[str, LabStatus] = {}
    for record in known:
        found[record.name] = LabStatus(record.name, record.environment, record.hypervisor, record.state,
                                       record.snapshot, record.created_at, record=record)
    for uri in uris:
        try:
            hypervisor = connect(uri)
        except LabmgrError as exc:
            if unreachable is not None:
                unreachable.append((uri, str(exc)))
            continue
        with hypervisor:
            for lab, (domains, networks) in tagged_objects(hypervisor).items():
                status = found.get(lab)
                if status is None:
                    status = found[lab] = LabStatus(lab, "?", uri, "orphaned")
                elif status.hypervisor != uri and status.domains:
                    continue            # another URI of the same host: the lab's own one has spoken
                status.domains = {name: hypervisor.domain(name).state for name in domains}
                status.networks = sorted(networks)
    return sorted(found.values(), key=lambda s: s.name)
