"""A restore that did not finish: put the lab back at the point it was at, and say which.

While a restore runs, the record says ``restoring`` (and which point it was going
to) and the lab's lock is held. Every VM gets ``labmgr-previous`` before any is
touched, and the new point is recorded before those snapshots are dropped. So a
lab found ``restoring`` with a free lock (its process was killed, or libvirt went
away under it) is put back by reverting each VM that has ``labmgr-previous``; a
VM without one was never touched by that restore. The record is then ``up`` at
its previous point.
"""

from __future__ import annotations

import shutil

from ..errors import BusyError, LabmgrError
from ..hosts import host_for
from ..hypervisor import connect
from ..progress import SILENT, Reporter
from . import records
from .pointintime import PREVIOUS, drop_previous, revert
from .records import LabRecord


def settle(record: LabRecord) -> str:
    """Revert ``record``'s VMs to ``labmgr-previous`` where they have it, drop it, remove staged
    media, and record the lab ``up`` at its previous point. A record already at its new point
    (killed while dropping the previous snapshots) keeps it: they are only dropped. The caller
    holds the lab's lock."""
    going_to = record.restoring.get("at", "?")
    interrupted = record.state == "restoring"
    with connect(record.hypervisor) as hypervisor:
        for server in record.servers.values():
            if not hypervisor.has_domain(server.domain):
                continue
            domain = hypervisor.domain(server.domain)
            if PREVIOUS in domain.snapshot_names():
                if interrupted:
                    revert(domain, PREVIOUS)
                drop_previous(domain)
    shutil.rmtree(record.directory / "media", ignore_errors=True)
    if str(record.host_directory) != str(record.directory):
        with host_for(record.hypervisor) as host:
            host.remove_tree(record.host_directory / "media")
    record.state, record.restoring = "up", {}
    record.save()
    at = record.point.get("at") or "its clean clone (no point restored yet)"
    if not interrupted:
        return f"lab {record.name}: at {at}"
    return f"lab {record.name}: the restore to {going_to} did not finish; the lab is back at {at}"


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
