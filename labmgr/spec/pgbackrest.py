"""A PostgreSQL source restored from a team's pgBackRest repository (read-only): the stanza, and
where the repository is, a directory or an S3 bucket (docs/sources.md). Credentials never in the spec."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from ..strict import Strict
from .backups import S3Access


class PgBackRestSource(Strict):
    """``pgbackrest: {stanza, directory | s3}``: a base backup plus WAL, restorable to any second."""

    stanza: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    directory: Path | None = Field(default=None, description="a posix repository (pgBackRest's repo-path)")
    s3: S3Access | None = Field(default=None, description="an S3 repository: its prefix is the repo-path "
                                                          "in the bucket; the endpoint must be https")

    @model_validator(mode="after")
    def _one_repository(self) -> "PgBackRestSource":
        if (self.directory is None) == (self.s3 is None):
            raise ValueError("a pgbackrest source needs exactly one repository: 'directory' or 's3'")
        if self.directory is not None and not self.directory.is_absolute():
            raise ValueError(f"directory '{self.directory}' must be an absolute path")
        if self.s3 is not None and self.s3.endpoint and not self.s3.endpoint.startswith("https://"):
            raise ValueError(f"endpoint '{self.s3.endpoint}': pgBackRest reaches S3 only over https")
        return self

    @property
    def describe(self) -> str:
        where = self.directory if self.directory is not None else f"s3://{self.s3.bucket}/{self.s3.prefix}"
        return f"pgbackrest:{self.stanza}@{where}"
