"""Host keys checked as OpenSSH checks them, and SSH failures as one line saying what to do.

libvirt's qemu+ssh transport runs the system ``ssh`` client, which reads
~/.ssh/known_hosts (or ssh_config's UserKnownHostsFile) and /etc/ssh/ssh_known_hosts
and refuses unknown or changed keys when it has no terminal to ask on. labmgr's
own SSH connection (paramiko) loads the same files and refuses the same keys, so
the two never disagree about which machine is the hypervisor. Collection over
SSH (``dumps/sources/ssh.py``) uses the same policy (``trust``) with the spec's
known_hosts file.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from pathlib import Path

import paramiko

from ..errors import HypervisorError, LabmgrError
from .uri import SshTarget

USER_FILES = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_FILES = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


class UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"{hostname} is not in known_hosts")
        self.key = key


class RefuseUnknown(paramiko.MissingHostKeyPolicy):
    """Never add a key nobody checked (fabric's default would)."""

    def missing_host_key(self, client, hostname, key) -> None:
        raise UnknownHostKey(hostname, key)


def known_hosts_files(target: SshTarget, ssh_config: dict) -> list[Path]:
    """The files the host key is checked against, user files first."""
    user = target.known_hosts_files() or [Path(p).expanduser() for p in
                                          _words(ssh_config.get("userknownhostsfile")) or USER_FILES]
    system = [Path(p).expanduser() for p in _words(ssh_config.get("globalknownhostsfile")) or GLOBAL_FILES]
    return user + system


def _words(value) -> list[str]:
    if not value:
        return []
    return value if isinstance(value, list) else str(value).split()


def trust(client: paramiko.SSHClient, files: list[Path]) -> None:
    """Check host keys against ``files`` only, and refuse unknown ones."""
    client.get_host_keys().clear()
    client._system_host_keys.clear()       # noqa: SLF001 - paramiko has no public way to reset them
    for path in files:
        if path.is_file():
            client.load_system_host_keys(str(path))
    client.set_missing_host_key_policy(RefuseUnknown())


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def key_name(host: str, port: int) -> str:
    """How known_hosts names the host (OpenSSH's [host]:port for other ports than 22)."""
    return host if port == 22 else f"[{host}]:{port}"


def explain(exc: BaseException, target: SshTarget, host: str, port: int, files: list[Path]) -> LabmgrError:
    """One line for a failed SSH login to the hypervisor's host."""
    who = f"hypervisor {target.display}"
    name = key_name(host, port)
    shown = ", ".join(_home(p) for p in files if p.is_file()) or ", ".join(_home(p) for p in files[:1])
    if isinstance(exc, paramiko.BadHostKeyException):
        holder = next((p for p in files if p.is_file() and paramiko.HostKeys(str(p)).lookup(name)), None)
        where = _home(holder) if holder else "known_hosts"
        remove = f"ssh-keygen -R '{name}'" + (f" -f {where}" if holder and where != "~/.ssh/known_hosts" else "")
        return HypervisorError(
            f"host key of {who} has changed: it offers {fingerprint(exc.key)}, {where} has "
            f"{fingerprint(exc.expected_key)} for {name}",
            hint=f"if the host was reinstalled, check the new fingerprint with its administrator, remove the old "
                 f"key with {remove} and accept the new one with ssh once; otherwise someone may be in between")
    if isinstance(exc, UnknownHostKey):
        return HypervisorError(
            f"host key of {who} is unknown: {name} is not in {shown} (it offers {fingerprint(exc.key)})",
            hint=f"check the fingerprint with the host's administrator, then accept it with "
                 f"ssh {'-p ' + str(port) + ' ' if port != 22 else ''}"
                 f"{'-i ' + target.keyfile + ' ' if target.keyfile else ''}{target.login} true")
    if isinstance(exc, paramiko.PasswordRequiredException):
        return HypervisorError(f"the SSH key for {who} is protected by a passphrase",
                               hint="load it into ssh-agent with ssh-add; labmgr never asks for passphrases")
    if isinstance(exc, paramiko.AuthenticationException) or "No authentication methods" in str(exc):
        keys = f"the key {target.keyfile}, " if target.keyfile else ""
        return HypervisorError(
            f"SSH key refused by {who}: it accepted none of {keys}ssh-agent's keys and ~/.ssh/id_*",
            hint=f"add your public key to ~{target.user or ''}/.ssh/authorized_keys there, or name the key "
                 "with ?keyfile= in the URI")
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) or isinstance(exc, ConnectionRefusedError):
        return HypervisorError(f"{who} refuses SSH connections on port {port}",
                               hint="is sshd running there, and is the port right?")
    if isinstance(exc, socket.gaierror):
        return HypervisorError(f"{who}: the host name {host} does not resolve", hint="check the URI")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return HypervisorError(f"{who} does not answer on port {port}", hint="is it up and reachable from here?")
    if isinstance(exc, (paramiko.SSHException, OSError, EOFError)):
        return HypervisorError(f"SSH to {who} failed: {exc or type(exc).__name__}")
    raise exc


def _home(path: Path) -> str:
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home):] if text.startswith(home + "/") else text
