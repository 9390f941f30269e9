"""A remote hypervisor's machine, over one SSH connection: commands with fabric, files with SFTP.

The connection is made as libvirt's would be: the URI's user, port and
``keyfile``, ssh-agent and ~/.ssh keys, ~/.ssh/config (ProxyJump included), and
the host key checked against known_hosts, for every hop.
"""

from __future__ import annotations

import io
import os
import posixpath
import shlex
from pathlib import Path
from typing import BinaryIO

import paramiko
from fabric import Connection

from ..errors import HypervisorError, LabmgrError
from ..hostbase import Result, check_tree
from .trust import explain, known_hosts_files, trust
from .uri import SshTarget, parse_target

CONNECT_TIMEOUT = 15


class RemoteHost:
    remote = True

    def __init__(self, target: SshTarget, connection: Connection) -> None:
        self.target = target
        self.connection = connection
        self.name = target.display

    @classmethod
    def for_uri(cls, uri: str) -> "RemoteHost":
        target = parse_target(uri)
        return cls(target, open_connection(target))

    # commands ---------------------------------------------------------------
    def run(self, argv: list[str], *, check: bool = True, input: str | None = None) -> Result:
        command = shlex.join(argv)
        try:
            done = self.connection.run(command, hide=True, warn=True, pty=False,
                                       in_stream=io.StringIO(input) if input is not None else False)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HypervisorError(f"on {self.name}: '{argv[0]}' could not be run: {exc}") from None
        result = Result(done.exited, done.stdout, done.stderr)
        if result.exit_code == 127:
            raise LabmgrError(f"{argv[0]} is not installed on hypervisor host {self.name}")
        if check and not result.ok:
            tail = (result.stderr.strip() or result.stdout.strip())[-300:]
            raise LabmgrError(f"{' '.join(argv)} failed on {self.name}: {tail}")
        return result

    def open_channel(self, argv: list[str]) -> paramiko.Channel:
        """A channel whose stdin/stdout are those of ``argv`` running on the host (a relay, say)."""
        channel = self.connection.transport.open_session(timeout=CONNECT_TIMEOUT)
        channel.exec_command(shlex.join(argv))
        return channel

    # files ------------------------------------------------------------------
    @property
    def sftp(self) -> paramiko.SFTPClient:
        return self.connection.sftp()

    def put(self, local: Path, path: str | os.PathLike) -> None:
        """Upload ``local`` with SFTP; it appears at ``path`` only once complete."""
        part = _part_name(path)
        with self._file_op("upload", path):
            self.sftp.put(str(local), part)
            self.sftp.posix_rename(part, str(path))

    def write_from(self, source: BinaryIO, path: str | os.PathLike) -> None:
        part = _part_name(path)
        with self._file_op("upload", path):
            self.sftp.putfo(source, part)
            self.sftp.posix_rename(part, str(path))

    def open_read(self, path: str | os.PathLike) -> BinaryIO:
        with self._file_op("read", path):
            handle = self.sftp.open(str(path), "rb")
            handle.prefetch()
            return handle

    def copy(self, source: str | os.PathLike, target: str | os.PathLike) -> None:
        self.run(["cp", "--", str(source), str(target)])

    def mkdir(self, path: str | os.PathLike) -> None:
        self.run(["mkdir", "-p", "--", str(path)])

    def remove_tree(self, path: str | os.PathLike) -> None:
        self.run(["rm", "-rf", "--", check_tree(path)])

    def remove_file(self, path: str | os.PathLike) -> None:
        self.run(["rm", "-f", "--", str(path)])

    def rename(self, source: str | os.PathLike, target: str | os.PathLike) -> None:
        with self._file_op("rename", source):
            self.sftp.posix_rename(str(source), str(target))

    def exists(self, path: str | os.PathLike) -> bool:
        try:
            self.sftp.stat(str(path))
            return True
        except FileNotFoundError:
            return False
        except (OSError, paramiko.SSHException) as exc:
            raise HypervisorError(f"on {self.name}: cannot look at {path}: {exc}") from None

    def size(self, path: str | os.PathLike) -> int:
        with self._file_op("stat", path):
            return self.sftp.stat(str(path)).st_size

    def chmod(self, path: str | os.PathLike, mode: int) -> None:
        with self._file_op("chmod", path):
            self.sftp.chmod(str(path), mode)

    def make_traversable(self, path: str | os.PathLike) -> None:
        """'Others' may enter every directory from ``path`` up: QEMU runs as libvirt-qemu there too."""
        directory = posixpath.normpath(str(path))
        while True:
            try:
                mode = self.sftp.stat(directory).st_mode
                if not mode & 0o001:
                    self.sftp.chmod(directory, (mode & 0o7777) | 0o001)
            except (OSError, paramiko.SSHException):
                pass
            if directory == "/":
                return
            directory = posixpath.dirname(directory)

    def free_bytes(self, path: str | os.PathLike) -> int:
        """Free space for ``path`` on the host (its nearest existing parent when not made yet)."""
        script = 'p=$1; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; df -Pk "$p"'
        out = self.run(["sh", "-c", script, "free", str(path)]).stdout
        try:
            return int(out.strip().splitlines()[-1].split()[3]) * 1024
        except (IndexError, ValueError):
            raise LabmgrError(f"on {self.name}: cannot read the free space of {path} from df: {out!r}") from None

    def _file_op(self, what: str, path: str | os.PathLike):
        return _FileOp(self.name, what, str(path))

    def close(self) -> None:
        try:
            self.connection.close()
        except (OSError, paramiko.SSHException, EOFError):
            pass

    def __enter__(self) -> "RemoteHost":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FileOp:
    """SFTP failures as one line naming the host and the file."""

    def __init__(self, host: str, what: str, path: str) -> None:
        self.host, self.what, self.path = host, what, path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or not isinstance(exc, (OSError, paramiko.SSHException, EOFError)):
            return False
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise HypervisorError(f"on {self.host}: {self.what} {self.path} failed: {reason}") from None


def open_connection(target: SshTarget) -> Connection:
    """Log in to the host of ``target``, host key checked on every hop; one clear line if refused."""
    kwargs = {"key_filename": [os.path.expanduser(target.keyfile)]} if target.keyfile else {}
    connection = Connection(target.host, user=target.user, port=target.port, connect_timeout=CONNECT_TIMEOUT,
                            connect_kwargs=kwargs)
    hop = connection
    while isinstance(hop, Connection):
        trust(hop.client, known_hosts_files(target, hop.ssh_config))
        hop = hop.gateway
    try:
        connection.open()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        files = known_hosts_files(target, connection.ssh_config)
        connection.close()
        raise explain(exc, target, connection.host, connection.port, files) from None
    connection.transport.set_keepalive(30)
    return connection


def diagnose(uri: str) -> None:
    """Raise the SSH reason a remote libvirt connection failed, if SSH is the reason."""
    host = RemoteHost.for_uri(uri)
    host.close()



def _part_name(path: str | os.PathLike) -> str:
    """A temporary name of its own beside ``path``: two uploads of one file never share one."""
    import secrets

    return f"{path}.{secrets.token_hex(4)}.part"
