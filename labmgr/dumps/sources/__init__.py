"""Where a dump comes from: a command run on production, read as a stream of chunks.

Two collectors share what is here: ``ssh`` (the command runs over SSH, its
stdout is read from the channel as it is produced) and ``agent`` (the command
runs in the production guest through the QEMU guest agent, into a temporary
file that is then read in bounded pieces). Both hand out an iterator of byte
chunks of at most ``CHUNK`` bytes and raise ``DumpError`` — one line naming the
server, the source and the tail of the command's stderr — when anything fails,
including at the very end of the stream when the command exited non-zero.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ..errors import DumpError

if TYPE_CHECKING:
    from ...spec.model import DumpSource, Server

__all__ = ["CHUNK", "DumpError", "StderrTail", "one_line", "what"]

CHUNK = 1 << 20          # the largest chunk a stream hands out


def what(server: "Server", source: "DumpSource") -> str:
    """How every message names a dump: ``dump 'orders' (postgres) of server 'db'``."""
    return f"dump '{source.name}' ({source.kind}) of server '{server.name}'"


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (lines joined with ' | '), cut to its last ``limit`` characters."""
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
    joined = " | ".join(lines)
    return joined if len(joined) <= limit else "..." + joined[-limit:]


class StderrTail:
    """The last ``limit`` bytes of a stream (a command's stderr), however much passes through."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._parts: deque[bytes] = deque()
        self._size = 0
        self.total = 0

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.total += len(data)
        data = data[-self.limit:]
        self._parts.append(data)
        self._size += len(data)
        while self._size - len(self._parts[0]) >= self.limit:
            self._size -= len(self._parts.popleft())

    def bytes(self) -> bytes:
        return b"".join(self._parts)[-self.limit:]

    def text(self, lines: int = 3) -> str:
        """The last few non-empty lines, on one line; '' when the stream said nothing."""
        decoded = self.bytes().decode(errors="replace")
        kept = [line.strip() for line in decoded.replace("\r", "\n").split("\n") if line.strip()]
        return one_line("\n".join(kept[-lines:]))

    def suffix(self) -> str:
        """``': <tail>'`` for an error message, or '' when stderr was empty."""
        text = self.text()
        return f": {text}" if text else " (no stderr)"
