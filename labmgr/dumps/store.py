"""The dump store: dump files, their manifests and the catalog, below one root.

    <root>/catalog.sqlite
    <root>/<server>/<source>/<YYYY-MM-DD>/<server>--<source>--<YYYYMMDDTHHMMSSZ>.<ext>[.age]
    <root>/<server>/<source>/<YYYY-MM-DD>/<same name>.json        (the manifest)

A dump is streamed into ``.<name>.<random>.partial`` next to its final name,
fsynced and linked to its final name (never over another); only then are its manifest and catalog row written. A dump that fails
half-way leaves no file and no row.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from .. import paths
from ..journal import intent
from ..spec.model import Environment
from ..timeparse import utc
from . import crypto, naming, plain, streams
from .catalog import Catalog
from .errors import DumpError
from .record import COLLECTORS, DumpRecord, write_manifest


def store_root(env: Environment) -> Path:
    """Where ``env``'s dumps live: the spec's ``dumps.store`` or ``<state>/dumps/<environment>``."""
    return Path(env.dumps.store or paths.subdir("dumps") / env.name).expanduser().absolute()


def store_for(env: Environment) -> "DumpStore":
    return DumpStore(store_root(env))


class DumpStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.catalog = Catalog(self.root)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> "DumpStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path_for(self, server: str, source: str, kind: str, taken_at: datetime, encrypted: bool) -> Path:
        return self.root / naming.relative_path(server, source, kind, taken_at, encrypted)

    # writing ---------------------------------------------------------------
    def write(self, server: str, source: str, kind: str, taken_at: datetime, chunks: Iterable[bytes], *,
              encrypt_to: list[str] | None = None, collector: str) -> DumpRecord:
        """Stream ``chunks`` into the store (age-encrypted to ``encrypt_to`` when given) and catalogue it."""
        to = crypto.recipients(encrypt_to) if encrypt_to else None
        final, taken_at = self._prepare(server, source, kind, taken_at, bool(to), collector)
        reader = streams.ChunkReader(chunks)

        def fill(out: BinaryIO) -> tuple[str, int]:
            writer = streams.HashingWriter(out)
            try:
                if to:
                    crypto.encrypt(reader, writer, to)
                else:
                    streams.copy(reader, writer)
            except Exception:
                if reader.error is not None:     # the producer's own error, not pyrage's wrapper of it
                    raise _ProducerFailed(reader.error) from None
                raise
            return writer.digest.hexdigest(), writer.size

        sha256, size = self._fill(final, fill)
        return self._commit(DumpRecord(
            None, server, source, kind, taken_at, size, sha256, reader.digest.hexdigest(), bool(to), final,
            collector=collector, collected_at=_now(), recipients=[r.strip() for r in encrypt_to or []]))

    def adopt(self, server: str, source: str, kind: str, taken_at: datetime, file: Path, *,
              encrypted: bool, collector: str = "import") -> DumpRecord:
        """Take an existing dump file into the store as it is: hard-linked when the store is on the
        same filesystem (no copy), copied otherwise. An encrypted file's plaintext checksum stays unknown."""
        final, taken_at = self._prepare(server, source, kind, taken_at, encrypted, collector)

        def fill(out: BinaryIO) -> tuple[str, int]:
            writer = streams.HashingWriter(out)
            streams.copy(streams.ChunkReader(streams.file_chunks(file)), writer)
            return writer.digest.hexdigest(), writer.size

        sha256, size = self._fill(final, fill, link_from=Path(file))
        return self._commit(DumpRecord(
            None, server, source, kind, taken_at, size, sha256, None if encrypted else sha256, encrypted, final,
            collector=collector, collected_at=_now()))

    def _prepare(self, server: str, source: str, kind: str, taken_at: datetime, encrypted: bool,
                 collector: str) -> tuple[Path, datetime]:
        if kind not in naming.EXTENSIONS:
            raise DumpError(f"'{kind}' is not a dump kind ({', '.join(naming.EXTENSIONS)})")
        if collector not in COLLECTORS:
            raise DumpError(f"'{collector}' is not a collector ({', '.join(COLLECTORS)})")
        taken_at = utc(taken_at).replace(microsecond=0)    # names and the catalog have second resolution
        existing = self.catalog.find(server, source, taken_at)
        if existing:
            raise DumpError(f"{existing.label} is already stored (id {existing.id}, {existing.path.name})",
                            hint="delete it first to replace it")
        return self.path_for(server, source, kind, taken_at, encrypted), taken_at

    def _fill(self, final: Path, fill: Callable[[BinaryIO], tuple[str, int]],
              link_from: Path | None = None) -> tuple[str, int]:
        """Produce ``final`` through a partial file; returns (sha256, size) of its bytes."""
        final.parent.mkdir(parents=True, exist_ok=True)
        # a name of its own (two collections of one second never share it), journalled so that
        # the next labmgr command removes it if this process is killed
        partial = final.with_name(f".{final.name}.{secrets.token_hex(4)}.partial")
        with intent("files", paths=[str(partial)], what=f"a partial dump {partial.name}"):
            return self._fill_partial(final, partial, fill, link_from)

    def _fill_partial(self, final: Path, partial: Path, fill: Callable[[BinaryIO], tuple[str, int]],
                      link_from: Path | None) -> tuple[str, int]:
        try:
            if link_from is not None and _try_link(link_from, partial):
                sha256, size = streams.sha256_file(partial)
            else:
                with open(partial, "xb") as out:
                    sha256, size = fill(out)
                    out.flush()
                    os.fsync(out.fileno())
            try:
                os.link(partial, final)       # never over a dump another collection just stored
            except FileExistsError:
                raise DumpError(f"{final.name} is already stored (collected twice in one second?)",
                                hint="collect again in a moment") from None
            partial.unlink()
            _fsync_dir(final.parent)
        except _ProducerFailed as failed:
            partial.unlink(missing_ok=True)
            raise failed.error from None
        except DumpError:
            partial.unlink(missing_ok=True)
            raise
        except OSError as exc:      # the store's disk (full, read-only, permissions), not the producer
            partial.unlink(missing_ok=True)
            raise DumpError(f"cannot write {final}: {exc.strerror or exc}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return sha256, size

    def _commit(self, record: DumpRecord) -> DumpRecord:
        """Manifest, then catalog row; if either fails the dump file goes too, so nothing half-exists."""
        try:
            write_manifest(record)
            return self.catalog.add(record)
        except BaseException:
            record.path.unlink(missing_ok=True)
            record.manifest_path.unlink(missing_ok=True)
            raise

    # reading ---------------------------------------------------------------
    def open_plain(self, record: DumpRecord, identity_file: Path | None = None, backup=None):
        """The dump's plaintext as a stream (``plain.open_record``), never written to disk."""
        return plain.open_record(record, identity_file, backup, cache_root=self.root)

    # removing --------------------------------------------------------------
    def delete(self, record: DumpRecord) -> None:
        """Remove the dump's file, its manifest and its catalog row (and directories left empty).
        A backup indexed where it is loses only its catalog row: labmgr never deletes a team's backup."""
        if record.located:
            if record.id is not None:
                self.catalog.delete(record.id)
            return
        record.path.unlink(missing_ok=True)
        record.manifest_path.unlink(missing_ok=True)
        if record.id is not None:
            self.catalog.delete(record.id)
        directory = record.path.parent
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                break
            directory = directory.parent


class _ProducerFailed(Exception):
    """Carries the chunk iterator's own exception past the store's handling of disk errors."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)    # the catalog keeps seconds


def _try_link(source: Path, target: Path) -> bool:
    """Hard-link ``source`` to ``target``; False when they are on different filesystems (or links are refused)."""
    try:
        os.link(source, target)
        return True
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

