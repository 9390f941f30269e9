"""A dump's content as it streams, member by member, with no plaintext left on disk.

The plaintext comes from ``plain.open_record`` (decrypted and decompressed as it
streams, whether stored or a team's backup where it is); a tar dump is read
as a stream (``tarfile`` mode ``r|*``); a PostgreSQL custom-format dump is
turned into SQL text by ``pg_restore -f -`` reading a pipe. Whatever reads the
content sees ``(member, reader)`` pairs: the tar member's path, or ``dump.sql``.
"""

from __future__ import annotations

import glob
import shutil
import tarfile
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import DumpError
from .plain import open_record, through_process
from .record import DumpRecord

SQL_MEMBER = "dump.sql"


def plaintext(record: DumpRecord, identity_file: Path | None, backup=None):
    """The dump's plaintext as a stream (``plain.open_record``: decrypted and decompressed on the way)."""
    return open_record(record, identity_file, backup)


def members(record: DumpRecord, plain: BinaryIO) -> Iterator[tuple[str, BinaryIO]]:
    """The readable pieces of a dump: each regular file of a tar, or the SQL text of a database dump."""
    if record.kind == "files":
        try:
            with tarfile.open(fileobj=plain, mode="r|*") as tar:
                for member in tar:
                    if member.isfile():
                        yield member.name.removeprefix("./"), tar.extractfile(member)
        except tarfile.TarError as exc:
            raise DumpError(f"{record.label}: not a readable tar archive: {exc}") from None
    elif record.kind == "postgres":
        yield from _pg_sql(record, plain)
    else:
        yield SQL_MEMBER, plain


def _pg_sql(record: DumpRecord, plain: BinaryIO) -> Iterator[tuple[str, BinaryIO]]:
    """SQL text of a custom-format pg_dump, from ``pg_restore -f -`` fed through a pipe."""
    def failed(stderr: str) -> DumpError:
        return DumpError(f"{record.label}: pg_restore cannot read it: {stderr}",
                         hint="is it a pg_dump --format=custom file of a PostgreSQL no newer than the host's?")

    with through_process([pg_restore(), "-f", "-"], plain, failed) as sql:
        yield SQL_MEMBER, sql


def pg_restore() -> str:
    """The newest pg_restore on the host (Debian's wrapper in /usr/bin needs a cluster to choose)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_restore"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    chosen = found[-1] if found else shutil.which("pg_restore")
    if not chosen:
        raise DumpError("pg_restore is not installed on this host",
                        hint="install the postgresql-client package to read PostgreSQL dumps")
    return chosen
