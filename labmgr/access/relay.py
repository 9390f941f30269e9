"""A byte relay to a lab server, started inside the lab's door on a remote hypervisor's host.

This machine cannot enter a network namespace of another host. So for a remote
hypervisor a small relay runs there, in the door (``ip netns exec``), with its
stdin/stdout as the connection to IP:PORT: OpenSSH runs it as its ProxyCommand
over the user's own ssh to the hypervisor (a jump host, as an administrator would
set one up by hand); ``labmgr forward`` runs one per connection on a channel of
labmgr's SSH connection. It uses the host's python3 (half-close passed on), else
bash's /dev/tcp.
"""

from __future__ import annotations

import shlex
import socket
from typing import TYPE_CHECKING

import paramiko

from ..remote.uri import SshTarget

if TYPE_CHECKING:
    from ..remote.host import RemoteHost

# python3 on the hypervisor's host, stdlib only, 3.6+; no '%' (ssh_config would expand it)
PYTHON_RELAY = r"""
import os, socket, sys, threading
ip, port, announce = sys.argv[1], int(sys.argv[2]), len(sys.argv) > 3
try:
    s = socket.create_connection((ip, port), 10)
except OSError as e:
    sys.stderr.write("labmgr-relay: " + ip + ":" + str(port) + ": " + (e.strerror or str(e)) + "\n")
    sys.exit(1)
s.settimeout(None)
if announce:
    sys.stderr.write("labmgr-relay: connected\n")
    sys.stderr.flush()
def upstream():
    try:
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
threading.Thread(target=upstream, daemon=True).start()
try:
    while True:
        data = s.recv(65536)
        if not data:
            break
        view = memoryview(data)
        while view:
            view = view[os.write(1, view):]
except OSError:
    pass
"""

# without python3: bash can connect but not half-close, so the server sees the end only when it ends
BASH_RELAY = ('exec 3<>"/dev/tcp/$0/$1" || exit 1; [ -n "$2" ] && echo "labmgr-relay: connected" >&2; '
              'cat <&3 & cat >&3; wait')

CHOOSE = 'py=$1 sh=$2; shift 2; command -v python3 >/dev/null 2>&1 && exec python3 -c "$py" "$@"; exec bash -c "$sh" "$@"'


def relay_argv(namespace: str, ip: str, port: int, announce: bool = False) -> list[str]:
    """The command, run on the hypervisor's host, that relays stdin/stdout to IP:PORT from inside the door."""
    return ["ip", "netns", "exec", namespace, "sh", "-c", CHOOSE, "labmgr-relay", PYTHON_RELAY, BASH_RELAY,
            ip, str(port), *(["announce"] if announce else [])]


def proxy_command(hop: SshTarget, namespace: str, ip: str, port: int) -> str:
    """An OpenSSH ProxyCommand: the user's ssh to the hypervisor (same user, port, key, known_hosts
    as libvirt's), running the relay in the door."""
    argv = ["ssh", "-T", "-e", "none", "-o", "BatchMode=yes"]
    if hop.port:
        argv += ["-p", str(hop.port)]
    if hop.user:
        argv += ["-l", hop.user]
    if hop.keyfile:
        argv += ["-i", hop.keyfile]
    if hop.known_hosts:
        argv += ["-o", f"UserKnownHostsFile={hop.known_hosts}"]
    argv += ["--", hop.host, shlex.join(relay_argv(namespace, ip, port))]
    return shlex.join(argv).replace("%", "%%")


def open_relay(host: RemoteHost, namespace: str, ip: str, port: int, timeout: float = 15) -> paramiko.Channel:
    """A channel connected to IP:PORT in the door on ``host`` (a RemoteHost); OSError if it cannot be."""
    try:
        channel = host.open_channel(relay_argv(namespace, ip, port, announce=True))
    except (paramiko.SSHException, EOFError) as exc:
        raise OSError(f"the hypervisor's host refused a relay: {exc}") from None
    channel.settimeout(timeout)
    said = b""
    try:
        while b"\n" not in said:
            chunk = channel.recv_stderr(1024)
            if not chunk:
                break
            said += chunk
    except socket.timeout:
        channel.close()
        raise OSError(f"{ip}:{port} did not answer within {timeout:.0f} s") from None
    if not said.startswith(b"labmgr-relay: connected"):
        channel.close()
        reason = said.decode(errors="replace").strip().removeprefix("labmgr-relay: ")
        raise OSError(reason or "the relay on the hypervisor's host ended")
    channel.settimeout(None)
    return channel
