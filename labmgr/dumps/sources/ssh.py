"""Collect a dump over SSH: run the dump command, read its stdout from the channel as it comes.

paramiko, used directly: key authentication only (the spec's ``key`` file, no
agent, no other keys tried), and the server's host key must already be in the
spec's ``known_hosts`` file (default ``~/.ssh/known_hosts``) — an unknown or a
changed key stops the collection before anything runs. SSH's flow control keeps
memory bounded: paramiko buffers at most one channel window (``WINDOW``) and the
remote command waits while the consumer is slower than the dump.
"""

from __future__ import annotations

import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import paramiko

from ...remote.trust import UnknownHostKey, trust
from . import CHUNK, DumpError, StderrTail, one_line, what
from .commands import command_line, short

if TYPE_CHECKING:
    from ...spec.model import DumpSource, Server, SshAccess

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
WINDOW = 8 << 20          # bytes in flight per channel (paramiko's default is 2 MiB)
PACKET = 32 << 10         # SSH's standard maximum packet; OpenSSH sends no larger ones
POLL = 0.25               # seconds between stderr drains and deadline checks
KEEPALIVE = 30


def known_hosts_path(access: "SshAccess") -> Path:
    return (access.known_hosts or DEFAULT_KNOWN_HOSTS).expanduser()


def _keyscan(access: "SshAccess", known: Path) -> str:
    port = f"-p {access.port} " if access.port != 22 else ""
    return f"ssh-keyscan {port}{access.host} >> {known}"


def _host_entry(access: "SshAccess") -> str:
    return access.host if access.port == 22 else f"[{access.host}]:{access.port}"


def connect(server: "Server", source: "DumpSource", *, connect_timeout: float = 30) -> paramiko.SSHClient:
    """An authenticated SSH connection to the source's host, its host key checked; or a DumpError."""
    access = source.ssh
    assert access is not None
    name = what(server, source)
    address = f"{access.host}:{access.port}"
    known = known_hosts_path(access)
    key_path = access.key.expanduser()

    if not known.is_file():
        raise DumpError(f"{name}: known_hosts file {known} does not exist, so the host key of {address} "
                        "cannot be checked",
                        hint=f"check the server's key fingerprint, then: {_keyscan(access, known)}")
    try:
        pkey = paramiko.PKey.from_path(key_path)
    except paramiko.PasswordRequiredException:
        raise DumpError(f"{name}: SSH key {key_path} is protected by a passphrase",
                        hint="hourly collection runs unattended: give it a key without a passphrase") from None
    except OSError as exc:
        raise DumpError(f"{name}: cannot read SSH key {key_path}: {exc.strerror or exc}") from None
    except (paramiko.SSHException, ValueError, TypeError) as exc:
        raise DumpError(f"{name}: {key_path} is not a usable SSH private key: {one_line(str(exc))}") from None

    client = paramiko.SSHClient()
    try:
        trust(client, [known])       # the hypervisor's policy: these keys only, unknown ones refused
    except (OSError, paramiko.SSHException, ValueError) as exc:
        client.close()
        raise DumpError(f"{name}: cannot read known_hosts file {known}: {one_line(str(exc))}") from None
    try:
        client.connect(access.host, port=access.port, username=access.user, pkey=pkey,
                       look_for_keys=False, allow_agent=False, timeout=connect_timeout,
                       banner_timeout=connect_timeout, auth_timeout=connect_timeout,
                       channel_timeout=connect_timeout)
    except UnknownHostKey as exc:
        client.close()
        raise DumpError(f"{name}: host key of {address} ({exc.key.get_name()} "
                        f"{exc.key.fingerprint}) is not in {known}; refusing to connect",
                        hint=f"check that fingerprint with the server's administrator, then: "
                             f"{_keyscan(access, known)}") from None
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise DumpError(f"{name}: host key of {address} CHANGED: it offers {exc.key.get_name()} "
                        f"{exc.key.fingerprint}, {known} expects {exc.expected_key.fingerprint}; "
                        "refusing to connect: someone may be intercepting the connection",
                        hint=f"only if the server was really re-keyed: ssh-keygen -f {known} -R "
                             f"'{_host_entry(access)}' && {_keyscan(access, known)}") from None
    except paramiko.AuthenticationException:
        client.close()
        raise DumpError(f"{name}: {address} refused SSH key {key_path} for user '{access.user}'",
                        hint=f"add {key_path}.pub to ~{access.user}/.ssh/authorized_keys on {access.host}") from None
    except (socket.timeout, TimeoutError):
        client.close()
        raise DumpError(f"{name}: SSH to {address} timed out after {connect_timeout:.0f} s") from None
    except paramiko.ssh_exception.NoValidConnectionsError as exc:
        client.close()
        reasons = "; ".join(sorted({e.strerror or str(e) for e in exc.errors.values()}))
        raise DumpError(f"{name}: cannot connect to {address}: {reasons}",
                        hint="is sshd running there, and the host and port right?") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        raise DumpError(f"{name}: SSH to {address} failed: {one_line(str(exc)) or type(exc).__name__}") from None
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(KEEPALIVE)
    return client


@contextmanager
def open_stream(server: "Server", source: "DumpSource", argv: list[str], *, timeout: float = 3600,
                idle_timeout: float = 600, connect_timeout: float = 30) -> Iterator[Iterator[bytes]]:
    """Run ``argv`` on the source's host over SSH; yield an iterator of its stdout in chunks.

    The iterator raises DumpError if the command exits non-zero or is killed, if the
    connection breaks, if nothing arrives for ``idle_timeout`` seconds, or if the whole
    dump takes longer than ``timeout``. Leaving the block closes the connection (the
    remote command then gets SIGPIPE or a hangup).
    """
    access = source.ssh
    assert access is not None
    client = connect(server, source, connect_timeout=connect_timeout)
    try:
        try:
            transport = client.get_transport()
            assert transport is not None
            channel = transport.open_session(window_size=WINDOW, max_packet_size=PACKET, timeout=connect_timeout)
            channel.exec_command(command_line(argv))
            channel.shutdown_write()          # the command gets EOF on stdin
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise DumpError(f"{what(server, source)}: could not start '{short(argv)}' over SSH on "
                            f"{access.host}:{access.port}: {one_line(str(exc)) or type(exc).__name__}") from None
        yield _chunks(server, source, argv, channel, timeout=timeout, idle_timeout=idle_timeout)
    finally:
        client.close()


def _chunks(server: "Server", source: "DumpSource", argv: list[str], channel: paramiko.Channel, *,
            timeout: float, idle_timeout: float) -> Iterator[bytes]:
    access = source.ssh
    assert access is not None
    where = f"{access.host}:{access.port}"
    tail = StderrTail()
    idle_timeout = min(idle_timeout, timeout)
    received = 0
    start = last = time.monotonic()

    def fail(problem: str, hint: str | None = None) -> DumpError:
        channel.close()
        return DumpError(f"{what(server, source)}: '{short(argv)}' on {where} {problem} after "
                         f"{received} bytes{tail.suffix()}", hint=hint)

    def drain_stderr() -> None:
        nonlocal last
        while channel.recv_stderr_ready():
            tail.feed(channel.recv_stderr(CHUNK))
            last = time.monotonic()

    def check_clock() -> None:
        now = time.monotonic()
        if now - start > timeout:
            raise fail(f"did not finish within {timeout:.0f} s")
        if now - last > idle_timeout:
            raise fail(f"sent nothing for {idle_timeout:.0f} s", hint="is the dump command waiting for input?")

    channel.settimeout(POLL)
    while True:
        drain_stderr()
        try:
            data = channel.recv(CHUNK)
        except socket.timeout:
            if not channel.get_transport().is_active():
                raise fail("lost its connection") from None
            check_clock()
            continue
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise fail(f"lost its connection ({one_line(str(exc)) or type(exc).__name__})") from None
        if not data:                     # EOF: everything the command wrote has arrived
            break
        received += len(data)
        last = time.monotonic()
        yield data
        check_clock()

    # stdout is complete; the exit status follows (or the channel closes without one)
    while not channel.exit_status_ready():
        if not channel.get_transport().is_active():
            break
        check_clock()
        channel.status_event.wait(POLL)
    drain_stderr()
    status = channel.exit_status          # paramiko's -1: closed without an exit status
    if status != 0:
        if status == -1:
            raise fail("ended without an exit status (killed by a signal, or the connection broke)")
        raise fail(f"exited {status}")
    channel.close()
