"""Remove labs: everything a lab made, found by its record and by its libvirt tags.

Files go too: the local directory (the record) and the lab's directory in the
hypervisor's storage (overlays, media), on the hypervisor's host. A lab with no
record still names that directory in its domains' disks.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .. import locks, paths
from ..access.door import close_door, doors
from ..access.share.state import end_shares
from ..errors import BusyError, LabmgrError, NotFoundError
from ..hosts import host_for
from ..hypervisor import Hypervisor, connect
from ..progress import SILENT, Reporter
from ..xml.builder import DomainXML, read_tag
from . import records
from .hypervisors import forget_hypervisor, known_hypervisors


@dataclass
class Removed:
    lab: str
    domains: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    directory: bool = False
    door: bool = False
    shares: list[str] = field(default_factory=list)     # shares of the lab that were ended


def tagged_objects(hypervisor: Hypervisor) -> dict[str, tuple[list[str], list[str]]]:
    """Every lab of this state directory that has objects on ``hypervisor``: lab -> (domains, networks).
    Objects another labmgr made (another owner in the tag) are not ours to list or collect."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    mine = paths.owner_id()
    for domain in hypervisor.domains():
        tag = read_tag(domain.lab_metadata())
        if tag and tag.owner == mine:
            found.setdefault(tag.lab, ([], []))[0].append(domain.name)
    for name in hypervisor.network_names():
        try:
            tag = read_tag(hypervisor.network_xml(name))
        except NotFoundError:
            continue  # removed while we looked
        if tag and tag.owner == mine:
            found.setdefault(tag.lab, ([], []))[1].append(name)
    return found


def remove_lab(hypervisor: Hypervisor, lab: str, reporter: Reporter = SILENT) -> Removed:
    """Remove every domain, network and file of ``lab``. Safe to run again.

    Only objects whose labmgr tag names this lab and this state directory's owner are
    removed: a name in the record is a name the lab meant to use, and a define that
    failed on a name clash leaves that name to someone else (another labmgr, production)."""
    with records.lab_lock(lab, timeout=5) if records.lab_dir(lab).exists() else nullcontext():
        return _remove_lab(hypervisor, lab, reporter)


def _remove_lab(hypervisor: Hypervisor, lab: str, reporter: Reporter) -> Removed:
    removed = Removed(lab)
    removed.shares = [share.id for share in end_shares(lab)]     # nobody is shown a lab going away
    record = None
    try:
        record = records.load(lab)
        record.state = "removing"
        record.save()
    except NotFoundError:
        pass
    domains, networks = tagged_objects(hypervisor).get(lab, ([], []))     # exactly the ones tagged ours
    directories = _host_directories(hypervisor, lab, domains, record)     # read before the domains go
    with host_for(hypervisor.uri) as host, \
            reporter.step(f"removing lab {lab}", total=len(domains) + len(networks) + 1) as step:
        for name in domains:
            if hypervisor.has_domain(name):
                domain = hypervisor.domain(name)
                domain.destroy()
                domain.undefine()
                removed.domains.append(name)
            step.advance()
        removed.door = close_door(host, lab)       # before the bridges its veths are in
        for name in networks:
            if name in hypervisor.network_names():
                hypervisor.remove_network(name)
                removed.networks.append(name)
            step.advance()
        for directory in directories:
            host.remove_tree(directory)
        if records.lab_dir(lab).exists():
            records.remove_dir(lab)
            removed.directory = True
        step.advance()
    return removed


def _host_directories(hypervisor: Hypervisor, lab: str, domains: list[str], record) -> list[str]:
    """The lab's directories in hypervisor storage: the record's, and any its domains' disks are in."""
    found = {record.storage} if record and record.storage else set()
    marker = f"/labs/{lab}/"
    for name in domains:
        if hypervisor.has_domain(name):
            for disk in DomainXML(hypervisor.domain(name).xml()).disks():
                if disk.source and marker in disk.source:
                    found.add(disk.source.split(marker)[0] + marker.rstrip("/"))
    return sorted(found - {str(records.lab_dir(lab))})     # the local directory goes with the record


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
    doomed |= {d.name for d in records.lab_dirs() if not (d / records.RECORD).exists()
               and not locks.held_elsewhere(d / records.LOCK)}
    return sorted(doomed)


def _close_door(uri: str, lab: str) -> bool:
    host = host_for(uri)
    try:
        return close_door(host, lab)
    finally:
        host.close()


def orphaned_doors(uri: str) -> list[str]:
    """Labs with a door on the host of ``uri`` but no lab of that name up or being made (on any
    hypervisor: two URIs may name one host, and a door is named after its lab alone)."""
    live = {r.name for r in records.all_records() if r.state in ("up", "creating")}
    host = host_for(uri)
    try:
        return [lab for lab in doors(host) if lab not in live]
    finally:
        host.close()


def lab_gc(hypervisor_uris: list[str], reporter: Reporter = SILENT, expired: bool = False,
           unreachable: list[tuple[str, str]] | None = None) -> list[Removed]:
    """Collect on every known hypervisor; one that cannot be reached is noted (and listed in
    ``unreachable``) and the others are still collected."""
    from ..recovery import recover

    recover(reporter)           # interrupted restores and captures first: they are not garbage
    for lock in paths.subdir("drills").glob("*.lock"):      # drills that are over (or were killed)
        try:
            settled = time.time() - lock.stat().st_mtime > 60    # never one being taken right now
        except FileNotFoundError:
            continue
        if settled and not locks.held_elsewhere(lock):
            lock.unlink(missing_ok=True)
    out = []
    for uri in known_hypervisors(hypervisor_uris):
        try:
            with connect(uri) as hypervisor:
                for lab in garbage(hypervisor, expired):
                    try:
                        out.append(remove_lab(hypervisor, lab, reporter))
                    except BusyError as exc:        # taken up again meanwhile: not garbage after all
                        reporter.note(f"{lab}: not collected: {exc}")
            for lab in orphaned_doors(uri):
                out.append(Removed(lab, door=_close_door(uri, lab)))
            # collected, and no lab recorded there: nothing to look for until a lab goes there again
            if not any(r.hypervisor == uri for r in records.all_records()):
                forget_hypervisor(uri)
        except LabmgrError as exc:
            reporter.note(f"{uri}: not collected: {exc}")
            if unreachable is not None:
                unreachable.append((uri, str(exc)))
    return out
