"""Which SSH login a libvirt URI means: qemu+ssh://user@host:port/system?keyfile=...

libvirt reaches a remote hypervisor through the system ``ssh`` client
(``qemu+ssh``) or its own libssh/libssh2 code (``qemu+libssh``,
``qemu+libssh2``); labmgr logs in to the same host with the same user, port and
key for everything libvirt cannot do (files, network namespaces, qemu-img), and
checks the host key against the same known_hosts files libvirt's transport uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..errors import HypervisorError

SSH_TRANSPORTS = ("ssh", "libssh", "libssh2")


@dataclass(frozen=True)
class SshTarget:
    uri: str
    transport: str                  # ssh, libssh or libssh2
    host: str
    user: str | None                # None: what ~/.ssh/config or the local user says
    port: int | None                # None: what ~/.ssh/config says, else 22
    keyfile: str | None             # ?keyfile=
    known_hosts: str | None         # ?known_hosts= (libssh, libssh2: libvirt's own check uses it)

    @property
    def login(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def display(self) -> str:
        return self.login + (f":{self.port}" if self.port and self.port != 22 else "")

    def known_hosts_files(self) -> list[Path]:
        """The user-level known_hosts file(s) libvirt's transport checks the host key against."""
        if self.known_hosts:
            return [Path(self.known_hosts).expanduser()]
        if self.transport == "libssh2":     # libvirt's default for libssh2
            config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
            return [config / "libvirt" / "known_hosts"]
        return []                           # OpenSSH's own: ~/.ssh/known_hosts or ssh_config's


def is_remote(uri: str) -> bool:
    return bool(urlsplit(uri).hostname)


def parse_target(uri: str) -> SshTarget:
    """The SSH login of a remote libvirt URI; one clear error for a URI labmgr cannot use."""
    parts = urlsplit(uri)
    if not parts.hostname:
        raise HypervisorError(f"{uri} is a local libvirt URI, not a remote one")
    transport = parts.scheme.partition("+")[2]
    if transport not in SSH_TRANSPORTS:
        raise HypervisorError(
            f"hypervisor {uri}: labmgr reaches a remote hypervisor's host over SSH, not '{transport or 'tls'}'",
            hint=f"use qemu+ssh://{parts.netloc}{parts.path or '/system'}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if query.get("no_verify", "0") not in ("", "0"):
        raise HypervisorError(f"hypervisor {uri}: no_verify turns off the host key check, which labmgr keeps",
                              hint="remove no_verify and add the host's key to known_hosts (ssh once, or "
                                   "ssh-keyscan after checking its fingerprint)")
    if transport == "ssh" and "known_hosts" in query:
        raise HypervisorError(f"hypervisor {uri}: libvirt's ssh transport ignores known_hosts= (the ssh client "
                              "reads ~/.ssh/known_hosts)",
                              hint="put the host key in ~/.ssh/known_hosts or name the file with "
                                   "UserKnownHostsFile in ~/.ssh/config; or use qemu+libssh://, which honours it")
    try:
        port = parts.port
    except ValueError:
        raise HypervisorError(f"hypervisor {uri}: the port is not a number") from None
    return SshTarget(uri=uri, transport=transport, host=parts.hostname, user=parts.username or None, port=port,
                     keyfile=query.get("keyfile") or None, known_hosts=query.get("known_hosts") or None)
