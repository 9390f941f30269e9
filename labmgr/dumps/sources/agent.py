"""Collect a dump through the QEMU guest agent of the production domain.

``guest-exec`` can capture a command's output, but only up to 16 MiB, silently
truncated, handed back base64 in one reply: useless for a dump. So the dump
command runs in the guest with its stdout and stderr redirected to files in a
fresh temporary directory (``/var/tmp/labmgr-dump-<owner id>-<random>``, mode 0700,
journalled before it is made so that a killed collection's is removed by the next
labmgr command); once it has exited
0, the dump file is read with ``guest-file-open``/``guest-file-read`` in pieces
of ``READ`` bytes, closed, and the directory removed. Production therefore needs
room in /var/tmp for one dump. A read that fails is retried after seeking back
to the last good offset; the byte count read must equal the file's size.

Measured with Debian 12's qemu-guest-agent 7.2 under libvirt 9.0: 1 MiB reads are
the fastest (reads of 3 MiB and more fail: libvirt refuses a reply string over
4 MiB of base64); see docs/collection.md for the figures.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_incrementing

from ... import paths
from ...errors import AgentError, LabmgrError
from ...journal import intent
from ...hypervisor import GuestAgent, connect
from . import CHUNK, DumpError, StderrTail, one_line, what
from .commands import short

if TYPE_CHECKING:
    from ...spec.model import DumpSource, Environment, Server

READ = min(1 << 20, CHUNK)  # bytes asked for per guest-file-read (a chunk handed out; 3 MiB fails)
CALL_TIMEOUT = 60          # seconds for any one agent call
READ_RETRIES = 3
TEMP_PREFIX = "/var/tmp/labmgr-dump-"
NEEDED = ("guest-exec", "guest-exec-status", "guest-file-open", "guest-file-read", "guest-file-seek",
          "guest-file-close")

# Runs in the guest: $1 the temp dir, $2 seconds allowed, the rest the dump command.
# timeout(1) kills the whole process group of the dump if it overruns.
WRAPPER = ('d=$1 t=$2; shift 2; cd / && umask 077 && '
           'exec timeout -k 10 "$t" "$@" > "$d/out" 2> "$d/err"')


class _Dump:
    """One dump in one guest: the temp directory, the command and what is known about them."""

    def __init__(self, server: "Server", source: "DumpSource", argv: list[str], agent: GuestAgent) -> None:
        self.server, self.source, self.argv, self.agent = server, source, argv, agent
        self.directory: str | None = None
        self.tail = StderrTail()

    @property
    def name(self) -> str:
        return f"{what(self.server, self.source)} (domain '{self.agent.domain.name}', via the guest agent)"

    def error(self, problem: str, hint: str | None = None) -> DumpError:
        return DumpError(f"{self.name}: {problem}", hint=hint)

    def call(self, execute: str, timeout: float = CALL_TIMEOUT, **arguments: Any) -> Any:
        try:
            return self.agent.command(execute, timeout=timeout, **arguments)
        except AgentError as exc:
            raise self.error(f"{execute} failed: {exc.message}", hint=exc.hint) from None

    def run(self, argv: list[str], timeout: float = CALL_TIMEOUT) -> str:
        try:
            return self.agent.run(argv, timeout=timeout)
        except AgentError as exc:
            raise self.error(one_line(exc.message, 400), hint=exc.hint) from None

    # steps -----------------------------------------------------------------
    def check_agent(self) -> None:
        info = self.call("guest-info")
        enabled = {c.get("name") for c in info.get("supported_commands", []) if c.get("enabled")}
        missing = [c for c in NEEDED if c not in enabled]
        if missing:
            raise self.error(f"the guest agent (version {info.get('version', '?')}) has "
                             f"{', '.join(missing)} disabled",
                             hint="allow them in the guest's qemu-ga configuration (--allow-rpcs / "
                                  "--block-rpcs, on RHEL-like systems /etc/sysconfig/qemu-ga), or collect via ssh")

    def make_directory(self, timeout: float, journal) -> None:
        stale = max(1440, int(2 * timeout / 60))          # minutes: surely no collection still running
        self.run(["sh", "-c", f"find /var/tmp -maxdepth 1 -name 'labmgr-dump-*' -mmin +{stale} "
                              "-exec rm -rf {} + 2>/dev/null; true"])
        # named here and journalled before it exists: a collection killed now leaves the next
        # labmgr command its exact name to remove (labmgr.recovery)
        directory = f"{TEMP_PREFIX}{paths.owner_id()}-{secrets.token_hex(6)}"
        journal.update(directory=directory)
        self.run(["mkdir", "-m", "700", "--", directory])
        self.directory = directory

    def execute(self, timeout: float) -> int:
        """Run the dump into the temp directory; wait for it; return its size in bytes."""
        seconds = max(1, int(timeout))
        pid = self.call("guest-exec", path="sh", arg=["-c", WRAPPER, "labmgr-dump", self.directory,
                                                      str(seconds), *self.argv],
                        **{"capture-output": True})["pid"]
        started = time.monotonic()
        deadline = started + seconds + 30
        try:
            status = self.agent.wait_exit(pid, deadline)
        except AgentError as exc:
            raise self.error(f"guest-exec-status failed: {exc.message}", hint=exc.hint) from None
        if status is None:
            try:     # timeout(1) leads its own process group: end all of it
                self.agent.run(["sh", "-c", f"kill -KILL -- -{pid} {pid}; true"], timeout=CALL_TIMEOUT)
            except AgentError:
                pass
            raise self.error(f"'{short(self.argv)}' did not finish within {seconds} s")
        for key in ("err-data", "out-data"):          # the wrapper's own complaints, if any
            if status.get(key):
                self.tail.feed(base64.b64decode(status[key]))
        self.tail.feed(self._stderr_file())
        code = status.get("exitcode")
        if status.get("signal") is not None:
            raise self.error(f"'{short(self.argv)}' was killed by signal {status['signal']}{self.tail.suffix()}")
        if code == 124 and time.monotonic() - started >= seconds - 1:
            raise self.error(f"'{short(self.argv)}' did not finish within {seconds} s and was stopped"
                             f"{self.tail.suffix()}")
        if code == 137:
            raise self.error(f"'{short(self.argv)}' was killed (SIGKILL: out of memory, or it ignored "
                             f"the stop after {seconds} s){self.tail.suffix()}")
        if code != 0:
            raise self.error(f"'{short(self.argv)}' exited {code}{self.tail.suffix()}")
        size = self.run(["stat", "-c", "%s", f"{self.directory}/out"]).strip()
        return int(size)

    def _stderr_file(self) -> bytes:
        try:
            return self.agent.run(["tail", "-c", str(self.tail.limit), f"{self.directory}/err"],
                                  timeout=CALL_TIMEOUT).encode()
        except AgentError:
            return b""

    def chunks(self, size: int) -> Iterator[bytes]:
        """The dump file in pieces of at most READ bytes, each read retried from its offset."""
        path = f"{self.directory}/out"
        handle = self.call("guest-file-open", path=path, mode="r")
        offset = 0
        try:
            while True:
                data, eof = self._read(handle, offset)
                if data:
                    offset += len(data)
                    yield data
                if eof or not data:
                    break
            if offset != size:
                raise self.error(f"read {offset} bytes of {path} but the dump has {size}",
                                 hint="the file changed while it was read; collect again")
        finally:
            try:
                self.agent.command("guest-file-close", timeout=CALL_TIMEOUT, handle=handle)
            except AgentError:
                pass

    def _read(self, handle: int, offset: int) -> tuple[bytes, bool]:
        """One guest-file-read at ``offset``; on failure seek back there and try again (1 s, then 2 s later)."""
        attempts = Retrying(retry=retry_if_exception_type((AgentError, binascii.Error, ValueError, AttributeError)),
                            stop=stop_after_attempt(READ_RETRIES), wait=wait_incrementing(start=1, increment=1))

        def read() -> tuple[bytes, bool]:
            if attempts.statistics["attempt_number"] > 1:
                self.agent.command("guest-file-seek", timeout=CALL_TIMEOUT, handle=handle, offset=offset, whence="set")
            reply = self.agent.command("guest-file-read", timeout=CALL_TIMEOUT, handle=handle, count=READ)
            data = base64.b64decode(reply.get("buf-b64", ""), validate=True)
            if len(data) != reply.get("count", -1):
                raise ValueError(f"{len(data)} bytes for a count of {reply.get('count')}")
            return data, bool(reply.get("eof"))

        try:
            return attempts(read)
        except RetryError as failed:
            exc = failed.last_attempt.exception()
            problem = exc.message if isinstance(exc, AgentError) else f"bad reply: {exc}"
            raise self.error(f"reading the dump at byte {offset} failed {READ_RETRIES} times: "
                             f"{one_line(problem)}") from None

    def cleanup(self) -> None:
        if self.directory and self.directory.startswith(TEMP_PREFIX):
            try:
                self.agent.run(["rm", "-rf", "--", self.directory], timeout=CALL_TIMEOUT)
            except AgentError:
                pass          # an hourly run removes temp directories older than a day


@contextmanager
def open_stream(env: "Environment", server: "Server", source: "DumpSource", argv: list[str], *,
                timeout: float = 3600) -> Iterator[Iterator[bytes]]:
    """Run ``argv`` in the production guest, then yield an iterator over the dump it wrote.

    The dump completes in the guest before the first byte is handed out: a command
    that fails raises here, on entering; a read that fails raises from the iterator.
    """
    try:
        hypervisor = connect(env.hypervisor)
    except LabmgrError as exc:
        raise DumpError(f"{what(server, source)}: {exc.message}", hint=exc.hint) from None
    try:
        try:
            domain = hypervisor.domain(server.domain)
            active = domain.is_active()
        except LabmgrError as exc:
            raise DumpError(f"{what(server, source)}: {exc.message}", hint=exc.hint) from None
        if not active:
            raise DumpError(f"{what(server, source)}: production domain '{server.domain}' on "
                            f"{env.hypervisor} is not running")
        dump = _Dump(server, source, argv, domain.agent(timeout=CALL_TIMEOUT))
        dump.check_agent()
        with intent("guest-directory", uri=env.hypervisor, domain=server.domain, directory="") as journal:
            try:
                dump.make_directory(timeout, journal)
                size = dump.execute(timeout)
                stream = dump.chunks(size)
                try:
                    yield stream
                finally:
                    stream.close()          # a consumer that stopped early: close the guest's file handle
            finally:
                dump.cleanup()
    finally:
        hypervisor.close()
