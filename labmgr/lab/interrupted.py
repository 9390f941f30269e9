"""A restore that did not finish: put the lab back at the point it was at, and say which.

While a restore runs, the record says ``restoring`` (and which point it was going
to) and the lab's lock is held. Every VM keeps its ``labmgr-previous`` point
(``pointintime``: an internal snapshot, or a saved state the record names) before
any is touched, and the new point is recorded before those are dropped. So a lab
found ``restoring`` with a free lock (its process was killed, or libvirt went
away under it) is put back by reverting each VM that has ``labmgr-previous``
(a saved-state VM killed between stopping and resuming is off: reverting resumes
it); a VM without one was never touched by that restore. The record is then
``up`` at its previous point.
"""

from __future__ import annotations

import shutil

from ..errors import BusyError, LabmgrError
from ..hosts import host_for
from ..hostbase import Host
from ..hypervisor import Hypervisor, connect
from ..progress import SILENT, Reporter
from . import records
from .pointintime import PREVIOUS, points_of
from .records import LabRecord


def settle(record: LabRecord) -> str:
    """Revert ``record``'s VMs to ``labmgr-previous`` where they have it, drop it, remove staged
    media, and record the lab ``up`` at its previous point. A record already at its new point
    (killed while dropping the previous snapshots) keeps it: they are only dropped. The caller
    holds the lab's lock."""
    going_to = record.restoring.get("at", "?")
    interrupted = record.state == "restoring"
    with connect(record.hypervisor) as hypervisor, host_for(record.hypervisor) as host:
        for name, server in record.servers.items():
            if not hypervisor.has_domain(server.domain):
                continue
            keeper = points_of(hypervisor, host, record, name)
            if keeper.has(PREVIOUS):
                if interrupted:
                    keeper.revert(PREVIOUS)
                keeper.drop(PREVIOUS)
        shutil.rmtree(record.directory / "media", ignore_errors=True)
        if str(record.host_directory) != str(record.directory):
            host.remove_tree(record.host_directory / "media")
    record.state, record.restoring = "up", {}
    record.save()
    at = record.point.get("at") or "its clean clone (no point restored yet)"
    if not interrupted:
        return f"lab {record.name}: at {at}"
    return f"lab {record.name}: the restore to {going_to} did not finish; the lab is back at {at}"


def drop_stale_previous(hypervisor: Hypervisor, host: Host, record: LabRecord) -> None:
    """A ``labmgr-previous`` left by an earlier restore killed after it finished is not this
    restore's: gone before the record says restoring, so recovery only ever reverts to ours."""
    for name, server in record.servers.items():
        if hypervisor.has_domain(server.domain):
            points_of(hypervisor, host, record, name).drop(PREVIOUS)


def settle_interrupted_restores(reporter: Reporter = SILENT) -> list[str]:
    done = []
    for record in records.all_records():
        if record.state != "restoring" or record.in_use():
            continue
        try:
            with records.lab_lock(record.name):
                record = records.load(record.name)
                if record.state == "restoring":
                    done.append(settle(record))
        except BusyError:
            continue
        except LabmgrError as exc:
            reporter.note(f"lab {record.name}: an interrupted restore could not be undone yet: {exc}")
    return done
