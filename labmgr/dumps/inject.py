"""Put dumps into a running lab VM through the hypervisor and restore them there.

The dumps travel on a read-only ISO hot-plugged as a CD-ROM on the VM's
virtio-scsi controller (never over a network into the lab). Through the guest
agent the guest finds the medium by its label, mounts it read-only, checks
every file's sha256, runs each restore command, unmounts; then the medium is
unplugged. If hot-plug is refused, small dumps can travel through the agent's
file writes instead (slow: a few MB/s).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HypervisorError, LabmgrError
from ..execresult import GuestCommands
from ..hypervisor import Domain
from ..progress import SILENT, Reporter, stage
from ..xml.builder import cdrom_xml, free_scsi_target
from .errors import DumpError
from .media import MediaFile

MOUNT = "/run/labmgr/media"
AGENT_COPY_LIMIT = 16 * 2**20      # above this, the agent file path is too slow to be a fallback

# Default restore commands, run in the guest by sh with LABMGR_DUMP (the file),
# LABMGR_DATABASE and LABMGR_PATH set. The spec's restore_command replaces them.
DEFAULT_RESTORE = {
    "postgres": 'runuser -u postgres -- pg_restore --clean --if-exists --create --exit-on-error '
                '--dbname=postgres "$LABMGR_DUMP"',
    "mariadb": 'mariadb -e "DROP DATABASE IF EXISTS \\`$LABMGR_DATABASE\\`" && mariadb < "$LABMGR_DUMP"',
    "files": 'mkdir -p "$LABMGR_PATH" && find "$LABMGR_PATH" -mindepth 1 -delete && '
             'tar -C "$LABMGR_PATH" -xpf "$LABMGR_DUMP"',
}


@dataclass(frozen=True)
class Restore:
    media: MediaFile
    command: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class InjectReport:
    transport: str = "iso"             # "iso" or "agent"
    seconds: dict[str, float] = field(default_factory=dict)   # media, restore of each dump


def inject_and_restore(domain: Domain, iso: Path, label: str, restores: list[Restore],
                       server: str, restore_timeout: float = 3600, reporter: Reporter = SILENT,
                       channel=None) -> InjectReport:
    """``channel``: the guest's command channel (its agent by default, or its lab login over SSH)."""
    agent = channel or domain.agent(timeout=30)
    report = InjectReport()
    started = time.monotonic()
    device = cdrom_xml(iso, free_scsi_target(domain.xml(inactive=False)))
    with ExitStack() as cleanup:     # unmount, then unplug, whatever happens
        with stage(reporter, server, "media"):
            try:
                domain.attach_device(device)
            except HypervisorError as exc:
                _copy_through_agent(agent, restores, server, exc)
                report.transport = "agent"
                cleanup.callback(agent.exec, ["rm", "-rf", MOUNT])
            else:
                cleanup.callback(domain.detach_device, device)
                cleanup.callback(agent.exec, ["umount", MOUNT])
                mount_labelled(agent, label, MOUNT, fstype="iso9660", options="ro", what="dump medium",
                               modules="sr_mod and isofs")
            _check_sums(agent, restores, server)
        report.seconds["media"] = round(time.monotonic() - started, 2)
        with stage(reporter, server, "restore"):
            for restore in restores:
                begun = time.monotonic()
                _run(agent, restore, server, restore_timeout)
                report.seconds[restore.media.dump] = round(time.monotonic() - begun, 2)
    return report


def mount_labelled(channel: GuestCommands, label: str, mountpoint: str, *, fstype: str, options: str,
                   what: str, modules: str, timeout: float = 30) -> None:
    """Mount the hot-plugged disk labelled ``label`` at ``mountpoint`` in the guest, once the guest sees it."""
    deadline = time.monotonic() + timeout
    while True:
        found = channel.exec(["blkid", "-t", f"LABEL={label}", "-o", "device"])
        device = found.stdout.strip().splitlines()[0] if found.ok and found.stdout.strip() else ""
        if device:
            break
        if time.monotonic() > deadline:
            raise DumpError(f"the {what} {label} did not appear in '{channel.name}'",
                            hint=f"the guest needs the {modules} kernel modules")
        time.sleep(0.3)
    channel.run(["mkdir", "-p", mountpoint])
    channel.run(["mount", "-t", fstype, "-o", options, device, mountpoint], timeout=60)


def _check_sums(agent: GuestCommands, restores: list[Restore], server: str) -> None:
    for restore in restores:
        path = f"{MOUNT}/{restore.media.name}"
        result = agent.exec(["sha256sum", path], timeout=3600)
        got = result.stdout.split()[0] if result.ok and result.stdout else "(unreadable)"
        if got != restore.media.sha256:
            raise DumpError(f"server {server}: {restore.media.dump} {restore.media.taken_at} arrived "
                            f"damaged in the guest (sha256 {got[:12]}, expected {restore.media.sha256[:12]})")


def _run(agent: GuestCommands, restore: Restore, server: str, timeout: float) -> None:
    env = {**restore.env, "LABMGR_DUMP": f"{MOUNT}/{restore.media.name}"}
    result = agent.exec(["sh", "-c", restore.command], timeout=timeout, env=env)
    if not result.ok:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:]) or "no output"
        raise DumpError(f"server {server}: restoring {restore.media.dump} {restore.media.taken_at} "
                        f"failed (exit {result.exit_code}): {tail}")


def _copy_through_agent(agent: GuestCommands, restores: list[Restore], server: str, why: LabmgrError) -> None:
    total = sum(r.media.source.stat().st_size for r in restores)
    if total > AGENT_COPY_LIMIT:
        raise DumpError(f"server {server}: the dump medium could not be hot-plugged ({why}) and "
                        f"{total / 2**20:.0f} MiB is too much for the guest agent's file writes",
                        hint="give the lab VM a virtio-scsi controller or ACPI hot-plug") from None
    agent.run(["mkdir", "-p", MOUNT])
    for restore in restores:
        with restore.media.source.open("rb") as source:
            agent.write_file(f"{MOUNT}/{restore.media.name}", source)
    # the agent creates files root-only; the restore may run as another user, as it does from the ISO
    agent.run(["chmod", "-R", "a+rX", MOUNT])
