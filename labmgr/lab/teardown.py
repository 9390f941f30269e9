"""Remove labs: everything a lab made, found by its record and by its libvirt tags."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..errors import NotFoundError
from ..hypervisor import Hypervisor, connect
from ..progress import SILENT, Reporter
from ..xml.builder import read_tag
from . import records


@dataclass
class Removed:
    lab: str
    domains: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    directory: bool = False


def tagged_objects(hypervisor: Hypervisor) -> dict[str, tuple[list[str], list[str]]]:
    """Every lab that has objects on ``hypervisor``: lab -> (domains, networks)."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    for domain in hypervisor.domains():
        tag = read_tag(domain.lab_metadata())
        if tag:
            found.setdefault(tag.lab, ([], []))[0].append(domain.name)
    for name in hypervisor.network_names():
        try:
            tag = read_tag(hypervisor.network_xml(name))
        except NotFoundError:
            continue  # removed while we looked
        if tag:
            found.setdefault(tag.lab, ([], []))[1].append(name)
    return found


def remove_lab(hypervisor: Hypervisor, lab: str, reporter: Reporter = SILENT) -> Removed:
    """Remove every domain, network and file of ``lab``. Safe to run again."""
    removed = Removed(lab)
    record = None
    try:
        record = records.load(lab)
        record.state = "removing"
        record.save()
    except NotFoundError:
        pass
    domains, networks = tagged_objects(hypervisor).get(lab, ([], []))
    if record:
        domains = sorted(set(domains) | {s.domain for s in record.servers.values()})
        networks = sorted(set(networks) | {n.name for n in record.networks.values()})
    with reporter.step(f"removing lab {lab}", total=len(domains) + len(networks) + 1) as step:
        for name in domains:
            if hypervisor.has_domain(name):
                domain = hypervisor.domain(name)
                domain.destroy()
                domain.undefine()
                removed.domains.append(name)
            step.advance()
        for name in networks:
            if name in hypervisor.network_names():
                hypervisor.remove_network(name)
                removed.networks.append(name)
            step.advance()
        if records.lab_dir(lab).exists():
            records.remove_dir(lab)
            removed.directory = True
        step.advance()
    return removed


def lab_down(name: str, reporter: Reporter = SILENT, hypervisor_uri: str | None = None) -> Removed:
    try:
        uri = records.load(name).hypervisor
    except NotFoundError:
        if hypervisor_uri is None:
            raise
        uri = hypervisor_uri
    with connect(uri) as hypervisor:
        if not records.lab_dir(name).exists() and name not in tagged_objects(hypervisor):
            raise NotFoundError(f"no lab named '{name}'", hint="'labmgr lab list' shows the labs")
        return remove_lab(hypervisor, name, reporter)


def garbage(hypervisor: Hypervisor, expired: bool = False) -> list[str]:
    """Labs to collect: objects with no record, or records of abandoned or failed lab ups;
    with ``expired``, also labs whose lease has ended."""
    tagged = tagged_objects(hypervisor)
    known = {r.name: r for r in records.all_records()}
    doomed = {lab for lab in tagged if lab not in known}
    moment = datetime.now(timezone.utc)
    doomed |= {name for name, record in known.items() if record.hypervisor == hypervisor.uri
               and (record.is_abandoned() or (expired and record.lease_expired(moment)))}
    # a directory with no record: a lab up killed before its first write
    doomed |= {d.name for d in records.lab_dirs() if not (d / records.RECORD).exists()}
    return sorted(doomed)


def lab_gc(hypervisor_uris: list[str], reporter: Reporter = SILENT, expired: bool = False) -> list[Removed]:
    uris = sorted(set(hypervisor_uris) | {r.hypervisor for r in records.all_records()})
    out = []
    for uri in uris:
        with connect(uri) as hypervisor:
            for lab in garbage(hypervisor, expired):
                out.append(remove_lab(hypervisor, lab, reporter))
    return out
