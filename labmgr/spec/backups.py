"""Where a dump source's existing backups are (read-only): a directory or an S3-compatible bucket,
how they are named, compressed and encrypted (docs/sources.md). Credentials are never in the spec."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from ..strict import Strict

Compression = Literal["none", "gzip", "zstd", "xz"]
Cipher = Literal["none", "age", "gpg"]
# the last suffixes of a name say what was done to the dump, the outermost last
COMPRESSION_SUFFIXES = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd", ".xz": "xz"}
CIPHER_SUFFIXES = {".age": "age", ".gpg": "gpg", ".pgp": "gpg", ".asc": "gpg"}


class S3Access(Strict):
    """An S3-compatible bucket; the keys come from ``credentials_file`` (an AWS-style INI file) or the
    environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE ...)."""

    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = Field(default="", description="prepended to every name (a 'folder' of the bucket)")
    endpoint: str | None = Field(default=None, description="e.g. https://s3.eu-central-1.example.net; "
                                                           "default: AWS")
    region: str | None = None
    credentials_file: Path | None = Field(default=None, description="INI file: [profile] aws_access_key_id, "
                                                                    "aws_secret_access_key")
    profile: str = "default"
    ca_file: Path | None = Field(default=None, description="CA bundle that signed the endpoint's certificate "
                                                           "(default: the system's)")


class ResticRepository(Strict):
    """A restic repository at the backup source's location (its directory, or its bucket and prefix through
    restic's own s3 backend): each snapshot holding ``path`` is a point in time (docs/sources.md)."""

    password_file: Path = Field(description="the repository's password, in a file (never in the spec)")
    path: str = Field(pattern=r"^/", description="the backed-up directory as the snapshots hold it, "
                                                 "e.g. /srv/uploads")
    host: str | None = Field(default=None, description="only the snapshots of this host")
    tags: list[str] = Field(default_factory=list, description="only the snapshots with all these tags")


def split_suffixes(name: str) -> tuple[str, str]:
    """(compression, encryption) a name's extension says; 'none' for what it does not say."""
    cipher = next((c for s, c in CIPHER_SUFFIXES.items() if name.endswith(s)), "none")
    if cipher != "none":
        name = name[:name.rindex(".")]
    compression = next((c for s, c in COMPRESSION_SUFFIXES.items() if name.endswith(s)), "none")
    return compression, cipher


class BackupSource(Strict):
    """The backups a team already makes of one dump source, read where they are."""

    directory: Path | None = Field(default=None, description="a local directory (absolute)")
    s3: S3Access | None = None
    restic: ResticRepository | None = Field(default=None, description="the location holds a restic repository")
    name: str | None = Field(default=None, min_length=1, description="strftime-style template below the "
                                                                     "location, e.g. shop/%Y/%m/%d/shop-%Y-%m-%d_%H%M.sql.gz")
    timezone: str = Field(default="UTC", description="the zone the times in names are written in")
    compression: Compression | None = Field(default=None, description="default: from the extension")
    encryption: Cipher | None = Field(default=None, description="default: from the extension")
    identity_file: Path | None = Field(default=None, description="age identity file or an exported GnuPG "
                                                                 "secret key (needed to restore, not to index)")
    interval_minutes: int = Field(default=60, gt=0, description="how often a backup is expected")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not a time zone name (like UTC or Europe/Berlin)") from None
        return value

    @field_validator("name")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        from ..sources.template import NameTemplate     # the template's own rules, one place
        if value is not None:
            NameTemplate(value)
        return value

    @model_validator(mode="after")
    def _one_location(self) -> "BackupSource":
        if (self.directory is None) == (self.s3 is None):
            raise ValueError("a backup source needs exactly one location: 'directory' or 's3'")
        if self.directory is not None and not self.directory.is_absolute():
            raise ValueError(f"directory '{self.directory}' must be an absolute path")
        if self.restic is None and self.name is None:
            raise ValueError("a backup source needs 'name' (how its backups are named), or 'restic'")
        if self.restic is not None:      # restic names, compresses and encrypts its snapshots itself
            mixed = [f for f in ("name", "compression", "encryption", "identity_file")
                     if getattr(self, f) is not None] + (["timezone"] if self.timezone != "UTC" else [])
            if mixed:
                raise ValueError(f"a restic repository's snapshots have no {', '.join(mixed)}: leave "
                                 f"{'it' if len(mixed) == 1 else 'them'} out")
        return self

    @property
    def codecs(self) -> tuple[str, str]:
        """(compression, encryption): as given, else as the name template's extension says."""
        compression, cipher = split_suffixes(self.name or "")
        return self.compression or compression, self.encryption or cipher

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes)
