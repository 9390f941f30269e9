"""``lab up``: check the snapshot, place the lab, then resume it from the snapshot's warm
template (``instant.py``; the template is made by a cold boot the first time) or, with
``--cold``, boot it as production would be (``coldboot.py``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import LabError
from ..hostbase import Host
from ..hosts import host_for
from ..hypervisor import connect
from ..hypervisor.accel import choose_virt_type, requested_accel
from ..progress import SILENT, Reporter
from ..snapshot import Snapshot, find_snapshot
from ..snapshot.replicate import ensure_copy
from ..spec import Environment
from ..storage import storage_root
from .coldboot import cold_up
from .guestchannel import check_reachable
from .hypervisors import remember_hypervisor
from .instant import instant_up
from .labparts import check_names_free
from .placement import place
from .records import LabRecord


def lab_up(env: Environment, spec_path: Path, *, name: str | None = None, snapshot_id: str | None = None,
           reporter: Reporter = SILENT, cold: bool = False, drill_lock: str = "") -> LabRecord:
    """A lab of the snapshot: resumed from its warm template (made by a cold boot the first time),
    or with ``cold`` booted as production would be."""
    requested_accel(env.accel)          # a bad LABMGR_ACCEL is refused before anything else
    snapshot = find_snapshot(env.name, snapshot_id)
    _check_snapshot(env, snapshot)
    check_reachable(env, snapshot)      # a server no way can reach is refused before anything is made
    if any(server.lab_access for server in env.servers):
        cold = True                     # a warm template's guests are resumed through their agents
    site = place(env, snapshot, reporter)
    with connect(site.uri) as hypervisor, host_for(site.uri) as host:
        if site.uri in snapshot.locations():
            _check_images(snapshot, host, site.uri)
        virt_type = choose_virt_type(env.accel, hypervisor)
        check_names_free(hypervisor, env, name)
        snapshot = ensure_copy(snapshot, site.uri, host, storage_root(site), reporter)
        remember_hypervisor(site.uri)
        if cold:
            return cold_up(hypervisor, host, env, spec_path, snapshot, name, virt_type, reporter,
                           drill_lock=drill_lock)
        return instant_up(hypervisor, host, env, spec_path, snapshot, name, virt_type, reporter,
                          drill_lock=drill_lock)


def _check_snapshot(env: Environment, snapshot: Snapshot) -> None:
    for server in env.servers:
        if server.name not in snapshot.servers:
            raise LabError(f"snapshot {snapshot.id} has no copy of server {server.name}",
                           hint="capture a new snapshot after changing the spec")
    _refuse_missing(snapshot, [str(p) for p in snapshot.missing_files()], "")


def _check_images(snapshot: Snapshot, host: Host, uri: str) -> None:
    _refuse_missing(snapshot, snapshot.missing_on(host, uri), f" on {host.name}" if host.remote else "")


def _refuse_missing(snapshot: Snapshot, missing: list[str], where: str) -> None:
    if missing:
        raise LabError(f"snapshot {snapshot.id} is missing {missing[0]}{where}"
                       + (f" and {len(missing) - 1} more files" if len(missing) > 1 else ""),
                       hint="capture a new snapshot with 'labmgr snapshot capture'")


