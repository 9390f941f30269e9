"""Stream a dump out of production without holding it in memory (see docs/collection.md).

``open_dump_stream`` runs the source's dump command on production — over SSH, or
in the production guest through the QEMU guest agent — and yields an iterator
of byte chunks of at most 1 MiB. Every failure is a ``DumpError`` (one line
naming the server, the source and the tail of the command's stderr), and the
iterator raises at its end rather than stop when the command exited non-zero
or the stream broke. So a consumer that writes to a temporary file and renames
it only once the iterator is exhausted never keeps a broken dump::

    with open_dump_stream(env, server, source) as chunks:
        with open(tmp, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
    os.replace(tmp, final)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..spec.model import DumpSource, Environment, Server
from .sources import CHUNK, DumpError, what
from .sources import agent as agent_source
from .sources import ssh as ssh_source
from .sources.commands import command_line, dump_command

__all__ = ["CHUNK", "DumpError", "command_line", "dump_command", "open_dump_stream"]


@contextmanager
def open_dump_stream(env: Environment, server: Server, source: DumpSource, *,
                     timeout: float = 3600) -> Iterator[Iterator[bytes]]:
    """Yield an iterator of byte chunks (<= 1 MiB each) of the dump, as produced on production.

    Raises ``DumpError`` naming server, source and the tail of the dump command's
    stderr if the command fails or the stream breaks; the iterator raises at the
    end (instead of stopping) if the command exited non-zero. ``timeout`` bounds
    the whole dump, in seconds. Leaving the block early stops the collection and
    cleans up on production (closes the SSH channel; removes the guest's temp file).

    Via ssh the chunks arrive while the command runs, and a failing command is
    reported at the end of the iteration. Via the agent the command runs to its
    end in the guest first, so a failing command is reported on entering.
    """
    argv = dump_command(source)
    if source.via == "ssh":
        if source.ssh is None:
            raise DumpError(f"{what(server, source)}: collected via ssh but has no 'ssh' section")
        with ssh_source.open_stream(server, source, argv, timeout=timeout) as chunks:
            yield chunks
    elif source.via == "agent":
        with agent_source.open_stream(env, server, source, argv, timeout=timeout) as chunks:
            yield chunks
    else:
        raise DumpError(f"{what(server, source)}: unknown collector '{source.via}' (ssh or agent)")
