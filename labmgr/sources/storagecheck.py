"""`labmgr dumps check-storage ENV.yaml`: is each backup location fit to restore from tomorrow?

Per backup source: the newest backup's age against its expected interval, gaps
in the series, whether deleted or overwritten backups can be brought back
(bucket versioning, object lock and its retention), and whether the credentials
labmgr was given could delete.

The delete probe never touches a real backup and writes nothing:
- a directory: the permission bits (``os.access(W_OK)`` on each folder holding
  backups); deleting a file is writing its folder.
- a bucket whose versioning was never enabled: ``DeleteObject`` of a key that
  never existed (``<prefix>.labmgr-delete-probe-<random>``, checked absent
  first). S3 decides the permission before it looks for the key: AccessDenied
  means the credentials cannot delete; success deleted nothing, because there
  was nothing.
- a versioned bucket: a plain delete would add a delete marker (a write), so
  the probe deletes version ``null`` of that never-used key, which only
  ``s3:DeleteObjectVersion`` allows (the permanent delete) and which never
  adds a marker. Whether plain deletes (markers, recoverable) are allowed is
  not probed there.
Limits: a policy with conditions on the key (a prefix, a tag) may allow the
probe's key and deny the backups' or the reverse; IAM simulation would answer
exactly, but S3-compatible servers rarely offer it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..dumps.errors import DumpError
from ..progress import SILENT, Reporter
from ..spec.model import DumpSource, Environment
from .index import backup_sources, name_template
from .locations import Bucket, Directory
from .restic import ResticRepository
from .where import location_of

PROBE = ".labmgr-delete-probe-"


@dataclass
class StorageReport:
    server: str
    source: str
    location: str
    interval: timedelta
    backups: int = 0
    newest: datetime | None = None
    age: timedelta | None = None
    gaps: list[tuple[datetime, datetime, int]] = field(default_factory=list)   # (after, before, missing)
    versioning: str = "unknown"
    object_lock: str = "unknown"
    can_delete: bool | None = None
    delete_probe: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_storage(env: Environment, now: datetime | None = None, reporter: Reporter = SILENT) -> list[StorageReport]:
    now = now or datetime.now(timezone.utc)
    sources = backup_sources(env)
    if not sources:
        raise DumpError(f"environment {env.name} has no dump source with a 'backup' section",
                        hint="docs/sources.md says how to name the backups a team already makes")
    reports = []
    with reporter.step("check backup storage", total=len(sources)) as step:
        for server, source in sources:
            reports.append(check_source(server, source, now))
            step.advance()
    return reports


def check_source(server: str, source: DumpSource, now: datetime) -> StorageReport:
    backup = source.backup
    location = location_of(backup)
    template = name_template(backup)
    report = StorageReport(server, source.name, location.describe, backup.interval)
    times, folders = [], set()
    for found in location.list(template.listing_prefix if template else ""):
        when = template.match(found.name) if template else True
        if when is not False and (found.size > 0 or not location.sizes_known):
            times.append(found.modified if when is True else when)
            folders.add(found.name.rpartition("/")[0])
    times.sort()
    report.backups = len(times)
    _series(report, times, now)
    storage = location.storage if isinstance(location, ResticRepository) else location   # the repository's files
    if isinstance(storage, Bucket):
        _bucket(report, storage)
    else:
        _directory(report, storage, folders)
    return report


def _series(report: StorageReport, times: list[datetime], now: datetime) -> None:
    interval = report.interval
    if not times:
        report.problems.append("no backup matches the name template")
        return
    report.newest, report.age = times[-1], now - times[-1]
    if report.age > interval * 1.5:
        report.problems.append(f"the newest backup is {_span(report.age)} old (one expected every {_span(interval)})")
    for before, after in zip(times, times[1:]):
        if after - before > interval * 1.5:
            missing = round((after - before) / interval) - 1
            report.gaps.append((before, after, missing))
    if report.gaps:
        total = sum(g[2] for g in report.gaps)
        report.problems.append(f"{total} backup{'s' * (total != 1)} missing in {len(report.gaps)} "
                               f"gap{'s' * (len(report.gaps) != 1)}")


def _bucket(report: StorageReport, bucket: Bucket) -> None:
    from botocore.exceptions import ClientError
    client, name = bucket.client, bucket.access.bucket
    try:
        status = client.get_bucket_versioning(Bucket=name).get("Status")
        report.versioning = (status or "never enabled").lower()
    except ClientError as exc:
        report.versioning = f"unknown ({exc.response['Error']['Code']})"
    if report.versioning != "enabled":
        report.problems.append(f"bucket versioning is {report.versioning}: a deleted or overwritten backup "
                               "cannot be brought back")
    try:
        lock = client.get_object_lock_configuration(Bucket=name).get("ObjectLockConfiguration", {})
        retention = lock.get("Rule", {}).get("DefaultRetention", {})
        if lock.get("ObjectLockEnabled") != "Enabled":
            report.object_lock = "off"
        elif retention:
            length = f"{retention['Days']} days" if "Days" in retention else f"{retention.get('Years')} years"
            report.object_lock = f"{retention.get('Mode', '?').lower()}, {length}"
        else:
            report.object_lock = "on, no default retention"
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        report.object_lock = "off" if code == "ObjectLockConfigurationNotFoundError" else f"unknown ({code})"
    _probe_bucket(report, bucket)


def _probe_bucket(report: StorageReport, bucket: Bucket) -> None:
    from botocore.exceptions import ClientError
    client, name = bucket.client, bucket.access.bucket
    key = f"{bucket.prefix}{PROBE}{secrets.token_hex(8)}"
    try:
        client.head_object(Bucket=name, Key=key)
        report.delete_probe = f"not probed: {key} exists"
        return
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound", "403", "AccessDenied"):
            report.delete_probe = f"not probed: {exc.response['Error']['Code']}"
            return
    versioned = report.versioning in ("enabled", "suspended")
    request = {"Bucket": name, "Key": key, **({"VersionId": "null"} if versioned else {})}
    what = "permanently delete object versions" if versioned else "delete objects"
    try:
        client.delete_object(**request)
        report.can_delete = True
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code != "AccessDenied":
            report.delete_probe = f"unknown ({code})"
            return
        report.can_delete = False
    report.delete_probe = (f"{'could' if report.can_delete else 'cannot'} {what} (a delete of the never-used key "
                           f"{key}{', version null' if versioned else ''})")
    if report.can_delete:
        report.problems.append(f"the credentials labmgr was given could {what}: give it read-only ones")


def _directory(report: StorageReport, directory: Directory, folders: set[str]) -> None:
    report.versioning = report.object_lock = "n/a (a directory)"
    writable = sorted(f or "." for f in folders if os.access(Path(directory.root, f), os.W_OK))
    report.can_delete = bool(writable)
    report.delete_probe = ("could delete: this user may write " + ", ".join(writable[:3]) if writable
                           else "cannot delete: no folder holding backups is writable by this user")
    if writable:
        report.problems.append("labmgr runs as a user who could delete these backups (the folders are "
                               "writable): mount them read-only or run as another user")


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
