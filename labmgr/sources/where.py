"""Which reader a backup source's location needs: a directory, a bucket, or a restic repository in either."""

from __future__ import annotations

from ..spec.backups import BackupSource
from .locations import Bucket, Directory
from .restic import ResticRepository


def location_of(backup: BackupSource) -> Directory | Bucket | ResticRepository:
    if backup.restic is not None:
        return ResticRepository(backup)
    return Directory(backup.directory) if backup.directory is not None else Bucket(backup.s3)
