"""File-like adapters that hash what passes through them.

A dump arrives as an iterator of byte chunks; pyrage wants a reader and a
writer. These adapters let one pass compute both checksums (plaintext and
stored bytes) without a second read of the file.
"""

from __future__ import annotations

import hashlib
import os
import threading
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterable, Iterator

BLOCK = 1 << 20


class ChunkReader:
    """``read(n)`` over an iterator of chunks, hashing the bytes handed out.

    An exception from the iterator is kept in ``error`` as well as raised, because
    pyrage replaces exceptions raised inside its reader with its own error type.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = memoryview(b"")
        self.digest = hashlib.sha256()
        self.size = 0
        self.error: BaseException | None = None

    def read(self, n: int = -1) -> bytes:
        while not self._pending:
            try:
                self._pending = memoryview(bytes(next(self._chunks)))
            except StopIteration:
                return b""
            except BaseException as exc:
                self.error = exc
                raise
        if n is None or n < 0:
            n = len(self._pending)
        out = bytes(self._pending[:n])
        self._pending = self._pending[n:]
        self.digest.update(out)
        self.size += len(out)
        return out


class HashingWriter:
    """Writes to ``target`` and hashes what it writes."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.target.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.target.flush()


def file_chunks(path, block: int = BLOCK) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block_data := f.read(block):
            yield block_data


def copy(reader: ChunkReader, writer: HashingWriter) -> None:
    while data := reader.read(BLOCK):
        writer.write(data)


def sha256_file(path, progress=None) -> tuple[str, int]:
    """The sha256 and size of a file, read in 1 MiB blocks; ``progress(n)`` after each."""
    digest, size = hashlib.sha256(), 0
    for data in file_chunks(path):
        digest.update(data)
        size += len(data)
        if progress:
            progress(len(data))
    return digest.hexdigest(), size


@contextmanager
def pumped(produce: Callable[[BinaryIO], None]) -> Iterator[BinaryIO]:
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
