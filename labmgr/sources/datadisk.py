"""A restored PostgreSQL data directory put in place in a lab guest, from a hot-plugged disk.

The disk (``sources/pgrestore.py``: ext4 in a qcow2) goes on the VM's virtio-scsi
controller read-only; the guest finds it by its label, mounts it read-only, stops
its cluster of the same major version, copies the data in (the guest's own disk:
the lab's points in time hold it, and the disk is unplugged at once), gives it to
its postgres user and starts the cluster. A guest without a cluster of that major
version is refused in one line, before anything is stopped.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

from ..dumps.errors import DumpError
from ..dumps.inject import mount_labelled
from ..execresult import GuestCommands
from ..hypervisor import Domain
from ..progress import SILENT, Reporter, stage
from ..xml.builder import cdrom_xml, free_scsi_target
from .pgrestore import DataDisk

MOUNT = "/run/labmgr/pgdata"
# run by sh in the guest with LABMGR_MAJOR and LABMGR_MOUNT set; Debian's pg_lsclusters names the cluster
PUT_IN_PLACE = r'''
set -eu
line=$(pg_lsclusters -h 2>/dev/null | awk -v v="$LABMGR_MAJOR" '$1 == v {print; exit}')
if [ -z "$line" ]; then
  echo "the restored cluster is PostgreSQL $LABMGR_MAJOR; the guest runs $(pg_lsclusters -h 2>/dev/null | awk '{printf "%s ", $1}')" >&2
  exit 3
fi
cluster=$(echo "$line" | awk '{print $2}'); data=$(echo "$line" | awk '{print $6}')
systemctl stop "postgresql@$LABMGR_MAJOR-$cluster"
find "$data" -mindepth 1 -delete
cp -a "$LABMGR_MOUNT/." "$data/"
rm -rf "$data/lost+found"
chown -R postgres:postgres "$data"
chmod 700 "$data"
systemctl start "postgresql@$LABMGR_MAJOR-$cluster"
for i in $(seq 300); do pg_isready -q && exit 0; sleep 0.2; done
echo "PostgreSQL did not start on the restored data" >&2
exit 4
'''


def restore_data_disk(domain: Domain, disk: DataDisk, server: str, channel: GuestCommands,
                      reporter: Reporter = SILENT, timeout: float = 3600) -> dict[str, float]:
    started = time.monotonic()
    device = cdrom_xml(disk.path, free_scsi_target(domain.xml(inactive=False)), device="disk", format="qcow2")
    with ExitStack() as cleanup, stage(reporter, server, f"restore {disk.dump}"):
        domain.attach_device(device)
        cleanup.callback(domain.detach_device, device)
        cleanup.callback(channel.exec, ["umount", MOUNT])
        mount_labelled(channel, disk.label, MOUNT, fstype="ext4", options="ro,noload", what="data disk",
                       modules="sd_mod and ext4")
        result = channel.exec(["sh", "-c", PUT_IN_PLACE], timeout=timeout,
                              env={"LABMGR_MAJOR": str(disk.major), "LABMGR_MOUNT": MOUNT})
        if not result.ok:
            tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-2:]) or "no output"
            raise DumpError(f"server {server}: putting {disk.dump} at {disk.at:%Y-%m-%dT%H:%M:%SZ} in place "
                            f"failed (exit {result.exit_code}): {tail}")
    return {disk.dump: round(time.monotonic() - started, 2)}
