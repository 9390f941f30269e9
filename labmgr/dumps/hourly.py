"""`labmgr dumps collect`: take every dump of an environment now, into its store.

Each source's dump is streamed from production (over SSH or through the
hypervisor's guest agent) straight into the store, which hashes it, encrypts it
if the spec says so, and catalogs it only once it is complete. One failing
source does not stop the others; every failure is reported.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..errors import LabmgrError
from ..progress import SILENT, Reporter
from ..spec import Environment
from .collect import open_dump_stream
from .errors import DumpError
from .record import DumpRecord
from .store import store_for


@dataclass
class CollectResult:
    stored: list[DumpRecord] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)    # (server/source, error)


def collect(env: Environment, server_name: str | None = None, taken_at: datetime | None = None,
            reporter: Reporter = SILENT) -> CollectResult:
    """Collect every source (of one server, if named). ``taken_at`` stamps the dumps
    (default: when each one starts); the demo uses it to simulate past hours."""
    from ..recovery import recover

    recover(reporter)       # a killed collection's temp directory in production and partial dump go first
    servers = [env.server(server_name)] if server_name else env.servers
    recipients = env.dumps.encryption.recipients if env.dumps.encryption else None
    result = CollectResult()
    with store_for(env) as store:
        for server in servers:
            for source in server.dumps:
                if source.pgbackrest is not None:     # its points are the repository's (docs/sources.md)
                    continue
                name = f"{server.name}/{source.name}"
                stamp = taken_at or datetime.now(timezone.utc)
                try:
                    with ExitStack() as stack:
                        # two steps: via the agent the dump is made in production first, then read
                        with reporter.step(f"dump {name} on production"):
                            chunks = stack.enter_context(open_dump_stream(env, server, source))
                        with reporter.step(f"collect {name}") as step:
                            record = store.write(server.name, source.name, source.kind, stamp,
                                                 _counting(chunks, step, name), encrypt_to=recipients,
                                                 collector=source.via)
                except LabmgrError as exc:
                    result.failed.append((name, str(exc)))
                    continue
                result.stored.append(record)
    return result


def _counting(chunks, step, name: str):
    total = 0
    for chunk in chunks:
        total += len(chunk)
        step.advance(len(chunk))
        yield chunk
    if total == 0:     # no dump tool writes nothing: an empty dump is a broken one
        raise DumpError(f"{name}: the dump command produced no data")
