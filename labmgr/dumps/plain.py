"""The one way to a dump's plaintext: a stored dump or a backup where it is, decrypted (age, gpg)
and decompressed (gzip, zstd, xz) as it streams, with nothing on disk.

Decryption comes first (a team encrypts what it compressed): age through pyrage in
a thread writing an OS pipe, gpg as a ``gpg --decrypt`` process in a throw-away
GnuPG home holding only the given key. Each layer checks itself as it reads
(age's and OpenPGP's authentication, gzip's CRC, xz's check, zstd's frame
checksum when written) and an error in any layer is raised to the reader at the
end of the stream at the latest.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import subprocess
import tempfile
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from . import crypto
from .errors import DumpError
from .record import DumpRecord
from .streams import BLOCK, pumped


@contextmanager
def open_record(record: DumpRecord, identity_file: Path | None, backup=None,
                cache_root: Path | None = None) -> Iterator[BinaryIO]:
    """``record``'s plaintext as a stream. A located backup (``record.origin``) is read where it is,
    through ``backup`` (its spec ``BackupSource``), whose identity file decrypts it; or from its
    copy below ``cache_root`` when ``dumps index --cache`` made one."""
    with ExitStack() as stack:
        if record.located:
            if backup is None:
                raise DumpError(f"{record.label} is a backup at {record.origin} and its source has no 'backup' "
                                "section any more", hint="put it back in the spec, or run 'labmgr dumps index'")
            from ..sources import cache, locations, where     # S3 only when a backup is read
            copy = cache.cached(cache_root, record) if cache_root else None
            if copy is not None:
                md5 = record.checksum[4:] if (record.checksum or "").startswith("md5:") else None
                raw = locations.VerifiedReader(stack.enter_context(open(copy, "rb")), md5, record.size, str(copy))
            else:
                location = where.location_of(backup)
                raw = stack.enter_context(location.open(location.name_of(record.origin), record.size,
                                                        record.checksum))
            identity_file = backup.identity_file
        else:
            if not record.path.is_file():
                raise DumpError(f"{record.label}: the dump file {record.path} is missing")
            raw = stack.enter_context(open(record.path, "rb"))
        yield stack.enter_context(decoded(raw, record.encryption, record.compression, identity_file, record.label))


@contextmanager
def decoded(raw: BinaryIO, cipher: str, compression: str, identity_file: Path | None,
            what: str) -> Iterator[BinaryIO]:
    """``raw`` decrypted, then decompressed."""
    if cipher != "none" and identity_file is None:
        raise DumpError(f"{what} is encrypted and no {'age identity' if cipher == 'age' else 'GnuPG key'} was given",
                        hint="set dumps.encryption.identity_file in the spec (the backup source's "
                             "identity_file for a team's own backups)")
    with ExitStack() as stack:
        stream = raw
        if cipher == "age":
            identities = crypto.load_identities(identity_file)
            stream = stack.enter_context(pumped(lambda out: crypto.decrypt(raw, out, identities, what)))
        elif cipher == "gpg":
            stream = stack.enter_context(_gpg_decrypted(raw, identity_file, what))
        stream = stack.enter_context(_decompressed(stream, compression, what))
        yield stream


@contextmanager
def _decompressed(stream: BinaryIO, compression: str, what: str) -> Iterator[BinaryIO]:
    if compression == "none":
        yield stream
        return
    if compression == "gzip":
        reader = gzip.GzipFile(fileobj=stream, mode="rb")
    elif compression == "xz":
        reader = lzma.LZMAFile(stream, mode="rb")
    elif compression == "zstd":
        reader = _ZstdReader(stream, what)
    else:
        raise DumpError(f"{what}: '{compression}' is not a compression labmgr reads (gzip, zstd, xz)")
    checked = _Checked(reader, compression, what)
    try:
        yield checked
        while checked.read(BLOCK):       # to the end, so a damaged tail is seen
            pass
    finally:
        reader.close()


class _Checked:
    """A decompressor whose errors name the backup."""

    def __init__(self, reader, compression: str, what: str) -> None:
        self.reader, self.compression, self.what = reader, compression, what

    def read(self, n: int = -1) -> bytes:
        try:
            return self.reader.read(n)
        except DumpError:
            raise
        except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            raise DumpError(f"{self.what}: not a readable {self.compression} stream: {exc}",
                            hint="is the compression the one the spec says (or its extension implies)?") from None
        except Exception as exc:        # zstandard.ZstdError
            raise DumpError(f"{self.what}: not a readable {self.compression} stream: {exc}") from None

    def readable(self) -> bool:
        return True


class _ZstdReader:
    """zstd frames one after the other; a stream that ends inside a frame is an error (zstandard's own
    stream reader returns what it has and says nothing)."""

    def __init__(self, raw: BinaryIO, what: str) -> None:
        import zstandard
        self.raw, self.what, self.zstd = raw, what, zstandard.ZstdDecompressor()
        self.frame, self.in_frame, self.pending = self.zstd.decompressobj(), False, b""

    def read(self, n: int = -1) -> bytes:
        while not self.pending:
            chunk = self.raw.read(BLOCK)
            if not chunk:
                if self.in_frame:
                    raise DumpError(f"{self.what}: the zstd stream ends inside a frame (truncated)")
                return b""
            self.pending = self._decompress(chunk)
        size = len(self.pending) if n is None or n < 0 else n
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def _decompress(self, chunk: bytes) -> bytes:
        out = [self.frame.decompress(chunk)]
        self.in_frame = not self.frame.eof
        while self.frame.eof and self.frame.unused_data:       # the next frame starts in this chunk
            rest, self.frame = self.frame.unused_data, self.zstd.decompressobj()
            out.append(self.frame.decompress(rest))
            self.in_frame = not self.frame.eof
        if self.frame.eof:
            self.frame = self.zstd.decompressobj()
        return b"".join(out)

    def close(self) -> None:
        pass


@contextmanager
def _gpg_decrypted(raw: BinaryIO, key_file: Path, what: str) -> Iterator[BinaryIO]:
    """``gpg --decrypt`` in a GnuPG home of its own (removed after), holding only ``key_file``."""
    gpg = shutil.which("gpg")
    if gpg is None:
        raise DumpError("gpg is not installed on this host", hint="install the gnupg package")
    with tempfile.TemporaryDirectory(prefix="labmgr-gpg-") as home:
        env = {**os.environ, "GNUPGHOME": home}
        imported = subprocess.run([gpg, "--batch", "--quiet", "--import", str(key_file)], env=env,
                                  capture_output=True, text=True)
        if imported.returncode != 0:
            raise DumpError(f"cannot import the GnuPG key {key_file}: {_last_line(imported.stderr)}",
                            hint="export it with 'gpg --export-secret-keys --armor KEYID' (no passphrase)")
        def failed(stderr: str) -> DumpError:
            return DumpError(f"cannot decrypt {what} with gpg: {stderr}",
                             hint="is the key file the one the backup was encrypted to?")

        argv = [gpg, "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "", "--decrypt"]
        # gpg's failure is the cause of whatever the reader saw (an empty or cut stream): it wins
        with through_process(argv, raw, failed, env=env, explains_reader_errors=True) as plain:
            yield plain


@contextmanager
def through_process(argv: list[str], source: BinaryIO, failed: Callable[[str], DumpError],
                    env: dict | None = None, explains_reader_errors: bool = False) -> Iterator[BinaryIO]:
    """The output of the filter process ``argv`` fed ``source`` (by a thread, so neither side blocks
    the other). Whatever the reader leaves unread is drained so the process can finish; a non-zero
    exit raises ``failed(its last stderr line)``, also over the reader's own error when
    ``explains_reader_errors``."""
    process = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    errors: list[bytes] = []
    feeder = threading.Thread(target=feed, args=(source, process.stdin), daemon=True)
    drain = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    feeder.start()
    drain.start()
    reader_failed = True
    try:
        yield process.stdout
        while process.stdout.read(BLOCK):
            pass
        reader_failed = False
    finally:
        process.stdout.close()
        code = process.wait()
        feeder.join()
        drain.join()
        if code != 0 and (explains_reader_errors or not reader_failed):
            raise failed(_last_line(b"".join(errors).decode(errors="replace")))


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["(no output)"])[-1]


def feed(source: BinaryIO, sink: BinaryIO) -> None:
    """Copy ``source`` into a process's stdin; a consumer that stops is not an error here."""
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
