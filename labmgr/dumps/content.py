"""A dump's content as it streams, member by member, with no plaintext left on disk.

An age-encrypted dump is decrypted by a thread into a pipe; a tar dump is read
as a stream (``tarfile`` mode ``r|*``); a PostgreSQL custom-format dump is
turned into SQL text by ``pg_restore -f -`` reading a pipe. Whatever reads the
content sees ``(member, reader)`` pairs: the tar member's path, or ``dump.sql``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tarfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from . import crypto
from .errors import DumpError
from .record import DumpRecord
from .streams import BLOCK

SQL_MEMBER = "dump.sql"


@contextmanager
def plaintext(record: DumpRecord, identity_file: Path | None) -> Iterator[BinaryIO]:
    """The dump's plaintext as a stream: the file itself, or age decryption through a pipe."""
    if not record.path.is_file():
        raise DumpError(f"{record.label}: the dump file {record.path} is missing")
    if not record.encrypted:
        with open(record.path, "rb") as f:
            yield f
        return
    if identity_file is None:
        raise DumpError(f"{record.label} is encrypted and no age identity was given",
                        hint="set dumps.encryption.identity_file in the spec")
    identities = crypto.load_identities(identity_file)
    with _pumped(lambda out: _decrypt(record, identities, out)) as reader:
        yield reader


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
    process = subprocess.Popen([pg_restore(), "-f", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    errors: list[bytes] = []
    feeder = threading.Thread(target=_feed, args=(plain, process.stdin), daemon=True)
    drain = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    feeder.start()
    drain.start()
    try:
        yield SQL_MEMBER, process.stdout
        while process.stdout.read(BLOCK):    # the reader may stop early: let pg_restore finish
            pass
    finally:
        process.stdout.close()
        code = process.wait()
        feeder.join()
        drain.join()
    if code != 0:
        tail = b"".join(errors).decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise DumpError(f"{record.label}: pg_restore cannot read it: {tail[0]}",
                        hint="is it a pg_dump --format=custom file of a PostgreSQL no newer than the host's?")


def pg_restore() -> str:
    """The newest pg_restore on the host (Debian's wrapper in /usr/bin needs a cluster to choose)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_restore"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    chosen = found[-1] if found else shutil.which("pg_restore")
    if not chosen:
        raise DumpError("pg_restore is not installed on this host",
                        hint="install the postgresql-client package to read PostgreSQL dumps")
    return chosen


def _feed(source: BinaryIO, sink: BinaryIO) -> None:
    try:
        while data := source.read(BLOCK):
            sink.write(data)
    except (BrokenPipeError, ValueError, OSError):
        pass             # the consumer stopped; its own error is the one to report
    finally:
        try:
            sink.close()
        except OSError:
            pass


def _decrypt(record: DumpRecord, identities: list, out: BinaryIO) -> None:
    with open(record.path, "rb") as sealed:
        crypto.decrypt(sealed, out, identities, record.label)


@contextmanager
def _pumped(produce) -> Iterator[BinaryIO]:
    """A reader fed by ``produce(writer)`` in a thread, through an OS pipe (nothing on disk)."""
    read_fd, write_fd = os.pipe()
    reader, writer = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
    failure: list[BaseException] = []
    consumer_done = threading.Event()

    def run() -> None:
        try:
            produce(writer)
        except BaseException as exc:     # reported in the consumer's thread
            if not consumer_done.is_set():
                failure.append(exc)
        finally:
            try:
                writer.close()
            except OSError:
                pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield reader
        while reader.read(BLOCK):     # drain so a producer error at the end is seen
            pass
    finally:
        consumer_done.set()
        reader.close()
        thread.join()
        if failure:      # the producer's error (a bad identity, a damaged file) explains the consumer's
            raise failure[0]
