"""A lab guest's commands over its lab login: SSH from inside the lab's door.

The guest command channel of a server with no usable guest agent (``lab_access`` in
the spec). It offers what the guest agent offers the rest of labmgr (``exec``,
``run``, ``wait_ready``, ``set_time``, ``hostname``, ``interfaces``, ``write_file``),
with the same results and timeouts, so restores, probes and clock setting are written
once (``labmgr.lab.guestchannel`` picks the channel).

The host key is checked against the lab's known_hosts (learned through the
hypervisor: ``snapshot/hostkeys.py``), never switched off: a guest presenting
another key is refused.
"""

from __future__ import annotations

import json
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import BinaryIO

import paramiko

from ..errors import LabError
from ..execresult import ExecResult
from .netns import connect_in

GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BANNER = b"SSH-"


class GuestLoginError(LabError):
    """A lab guest could not be reached or refused over its lab login."""


class SshChannel:
    """Commands in one lab guest, over SSH from the door ``namespace`` to ``ip``:``port``."""

    def __init__(self, name: str, namespace: str, ip: str, port: int, user: str, key: Path,
                 known_hosts: Path, timeout: float = 10) -> None:
        self.name, self.namespace, self.ip, self.port = name, namespace, ip, port
        self.user, self.key, self.known_hosts, self.timeout = user, Path(key), Path(known_hosts), timeout
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()

    # reaching the guest -------------------------------------------------------

    def _connect(self) -> socket.socket:
        return connect_in(self.namespace, (self.ip, self.port), timeout=self.timeout)

    def banner(self) -> bool:
        """Does the guest's sshd answer with its banner? (how an agentless guest is waited for)"""
        try:
            with self._connect() as sock:
                sock.settimeout(5)
                return sock.recv(64).startswith(BANNER)
        except OSError:
            return False

    def wait_ready(self, timeout: float, poll: float = 1.0, is_active=None) -> float:
        """Wait until the guest's sshd answers with its banner; the seconds waited."""
        start = time.monotonic()
        while not self.banner():
            if is_active is not None and not is_active():
                raise GuestLoginError(f"lab server '{self.name}' stopped while booting")
            if time.monotonic() - start > timeout:
                raise GuestLoginError(f"lab server '{self.name}' ({self.ip}) did not answer SSH within "
                                      f"{timeout:.0f} s", hint="check that the guest boots ('labmgr console') "
                                                                "and runs sshd on its production address")
            time.sleep(poll)
        return time.monotonic() - start

    def ping(self, timeout: float = 5) -> bool:
        try:
            return self.exec(["true"], timeout=timeout).ok
        except LabError:
            return False

    def _session(self) -> paramiko.SSHClient:
        with self._lock:
            transport = self._client.get_transport() if self._client else None
            if transport is not None and transport.is_active():
                return self._client
            client = paramiko.SSHClient()
            # only the lab's known_hosts (learned through the hypervisor), and nothing else accepted
            if self.known_hosts.is_file():
                client.load_host_keys(str(self.known_hosts))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                client.connect(self.ip, port=self.port, username=self.user, key_filename=str(self.key),
                               sock=self._connect(), timeout=self.timeout, banner_timeout=self.timeout,
                               auth_timeout=self.timeout, allow_agent=False, look_for_keys=False)
            except paramiko.BadHostKeyException:
                client.close()
                raise GuestLoginError(f"lab server '{self.name}' ({self.ip}) presents a host key that is not the "
                                      "one the hypervisor reported; refused",
                                      hint="the lab guest is not the captured server: 'labmgr lab down' it") from None
            except paramiko.SSHException as exc:
                client.close()
                if "not found in known_hosts" in str(exc):
                    raise GuestLoginError(f"no host key of lab server '{self.name}' is known; refused",
                                          hint="capture a new snapshot: it records the host keys") from None
                raise GuestLoginError(f"lab login to '{self.name}' ({self.user}@{self.ip}) failed: {exc}",
                                      hint="check lab_access.ssh (user, key) in the spec") from None
            except OSError as exc:
                client.close()
                raise GuestLoginError(f"lab server '{self.name}' ({self.ip}:{self.port}) not reached: "
                                      f"{exc.strerror or exc}") from None
            self._client = client
            return client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # what the guest agent offers ----------------------------------------------

    def exec(self, argv: list[str], timeout: float | None = None, stdin: bytes | None = None,
             env: dict[str, str] | None = None) -> ExecResult:
        """Run ``argv`` in the guest and wait for it to exit (as ``GuestAgent.exec``)."""
        timeout = timeout or self.timeout
        prefix = ["env", "-i", f"PATH={GUEST_PATH}", *(f"{k}={v}" for k, v in env.items())] if env else []
        transport = self._session().get_transport()
        try:
            channel = transport.open_session(timeout=self.timeout)
            channel.exec_command(shlex.join([*prefix, *argv]))
        except (paramiko.SSHException, OSError) as exc:
            self.close()
            raise GuestLoginError(f"'{argv[0]}' could not be started in '{self.name}' over SSH: {exc}") from None
        writer = threading.Thread(target=_feed, args=(channel, stdin or b""), daemon=True)
        writer.start()
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        channel.settimeout(0.2)
        while not (channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready()):
            if time.monotonic() > deadline:
                channel.close()
                raise GuestLoginError(f"'{' '.join(argv)}' in '{self.name}' did not finish within {timeout:.0f} s")
            progressed = False
            if channel.recv_ready():
                out += channel.recv(65536)
                progressed = True
            if channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
                progressed = True
            if not progressed:
                time.sleep(0.02)
        code = channel.recv_exit_status()
        channel.close()
        return ExecResult(exit_code=code, stdout=out.decode(errors="replace"), stderr=err.decode(errors="replace"))

    def run(self, argv: list[str], timeout: float | None = None, stdin: bytes | None = None,
            env: dict[str, str] | None = None) -> str:
        result = self.exec(argv, timeout, stdin, env)
        if not result.ok:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise GuestLoginError(f"'{' '.join(argv)}' in '{self.name}' exited {result.exit_code}: "
                                  + " | ".join(tail))
        return result.stdout

    def set_time(self) -> None:
        """The guest clock from the host's (after a revert it is in the past)."""
        self.run(["date", "-u", "-s", f"@{time.time():.3f}"])

    def write_file(self, path: str, source: BinaryIO, chunk: int = 0) -> int:
        data = source.read()
        self.run(["sh", "-c", 'cat > "$1"', "sh", path], stdin=data)
        return len(data)

    def hostname(self) -> str:
        return self.run(["hostname"]).strip()

    def interfaces(self) -> list[dict]:
        """The guest's NICs as the agent reports them: name, MAC and IPv4 addresses."""
        out = []
        for nic in json.loads(self.run(["ip", "-j", "addr", "show"]) or "[]"):
            out.append({"name": nic.get("ifname"), "mac": (nic.get("address") or "").lower(),
                        "ipv4": [a["local"] for a in nic.get("addr_info", []) if a.get("family") == "inet"]})
        return out


def _feed(channel: paramiko.Channel, data: bytes) -> None:
    try:
        if data:
            channel.sendall(data)
        channel.shutdown_write()
    except (OSError, paramiko.SSHException):
        pass
