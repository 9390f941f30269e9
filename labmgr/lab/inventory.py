"""What labs exist and what state they are in (lab list / lab show)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import LabmgrError, NotFoundError
from ..hypervisor import connect
from . import records
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


def list_labs(extra_uris: list[str] = ()) -> list[LabStatus]:
    found: dict[str, LabStatus] = {}
    for record in records.all_records():
        found[record.name] = LabStatus(record.name, record.environment, record.hypervisor, record.state,
                                       record.snapshot, record.created_at, record=record)
    uris = sorted({r.hypervisor for r in records.all_records()} | set(extra_uris))
    for uri in uris:
        try:
            hypervisor = connect(uri)
        except LabmgrError:
            continue
        with hypervisor:
            for lab, (domains, networks) in tagged_objects(hypervisor).items():
                status = found.setdefault(lab, LabStatus(lab, "?", uri, "orphaned"))
                status.domains = {name: hypervisor.domain(name).state for name in domains}
                status.networks = sorted(networks)
    return sorted(found.values(), key=lambda s: s.name)


def show_lab(name: str) -> LabStatus:
    for status in list_labs():
        if status.name == name:
            return status
    raise NotFoundError(f"no lab named '{name}'", hint="'labmgr lab list' shows the labs")
