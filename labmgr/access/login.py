"""Reaching a lab's servers as if they were production: the core of ``labmgr ssh`` and
``labmgr forward`` (the CLI and the TUI call these).

The door is on the hypervisor's host. Here, connections are opened inside it
directly; on a remote hypervisor, through a relay started in it over SSH
(``relay.py``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import LabError, NotFoundError
from ..hosts import host_for
from ..lab import records
from ..lab.guestchannel import known_hosts_path
from ..spec import load_environment
from ..spec.model import Environment, Server
from .door import Door, open_door
from .forward import Forwarder
from .netns import connect_in
from .relay import open_relay, proxy_command
from .ssh import run_ssh, ssh_argv


@dataclass(frozen=True)
class Target:
    server: Server
    ip: str
    alias: str | None       # the hostname the user gave (host key checked under it), or None

    def describe(self, lab: str) -> str:
        return f"{self.alias or self.server.hostname} ({self.ip}) in lab {lab}"


def find_target(env: Environment, text: str) -> Target:
    """A spec server by name, hostname (full or short) or production IP."""
    for server in env.servers:
        ips = [str(nic.ip) for nic in server.nics]
        if text in ips:
            return Target(server, text, None)
        if text == server.name or text.lower() in (server.hostname.lower(), server.hostname.lower().split(".")[0]):
            return Target(server, ips[0], server.hostname)
    raise NotFoundError(f"'{text}' is not a server of environment {env.name}",
                        hint="servers: " + ", ".join(f"{s.name} ({s.hostname})" for s in env.servers))


def _up_lab(name: str):
    record = records.load(name)
    if record.state != "up":
        raise LabError(f"lab {name} is {record.state}, not up", hint=f"'labmgr lab show {name}'")
    return record, load_environment(record.spec)


def _check_running(record, target: Target) -> None:
    from ..hypervisor import connect

    with connect(record.hypervisor) as hypervisor:
        domain = record.servers[target.server.name].domain
        if not hypervisor.has_domain(domain) or hypervisor.domain(domain).state != "running":
            raise LabError(f"server {target.server.name} of lab {record.name} is not running",
                           hint=f"'labmgr lab show {record.name}'")


def door(name: str) -> Door:
    """Open (or find) the door of lab ``name``."""
    record, env = _up_lab(name)
    with host_for(record.hypervisor) as host:
        return open_door(host, record, env)


def ssh(name: str, server: str, *, user: str | None = None, port: int = 22, options: list[str] = (),
        command: list[str] = ()) -> int:
    record, env = _up_lab(name)
    target = find_target(env, server)
    _check_running(record, target)
    with host_for(record.hypervisor) as host:     # a remote host's SSH login is checked here, clearly
        lab_door = open_door(host, record, env)
        # a remote door: the user's own ssh reaches it through the hypervisor, as through a jump host
        proxy = proxy_command(host.target, lab_door.namespace, target.ip, port) if host.remote else None
    argv = ssh_argv(lab_door.namespace, target.ip, target.alias, user, port, list(options), list(command), proxy,
                    known_hosts=str(known_hosts_path(record)))
    return run_ssh(argv, target.describe(name), port)


def parse_server_port(server_port: str) -> tuple[str, int]:
    server, colon, port_text = server_port.rpartition(":")
    if not colon or not server or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise LabError(f"'{server_port}' is not SERVER:PORT (like app01:80)")
    return server, int(port_text)


def parse_listen(listen: str) -> tuple[str, int]:
    host, colon, port = listen.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise LabError(f"--listen '{listen}' is not ADDRESS:PORT (like 127.0.0.1:8080)")
    try:
        ipaddress.ip_address(host or "127.0.0.1")
    except ValueError:
        raise LabError(f"--listen '{listen}': '{host}' is not an IP address of this machine") from None
    return host or "127.0.0.1", int(port)


@dataclass
class Way:
    """How to reach one port of one lab server: ``opener()`` gives a new connected socket-like object."""

    record: object
    env: Environment
    target: Target
    port: int
    opener: Callable[[], object]
    remote: bool


def way_to(name: str, server_port: str) -> Way:
    """The lab's door opened, and a way to SERVER:PORT through it (``forward`` and ``share`` use it)."""
    server, port = parse_server_port(server_port)
    record, env = _up_lab(name)
    target = find_target(env, server)
    _check_running(record, target)
    host = host_for(record.hypervisor)        # a remote one stays logged in: each connection is a channel
    lab_door = open_door(host, record, env)
    if host.remote:
        def opener():
            return open_relay(host, lab_door.namespace, target.ip, port)
    else:
        def opener():
            return connect_in(lab_door.namespace, (target.ip, port))
    return Way(record, env, target, port, opener, host.remote)


def forward(name: str, server_port: str, listen: str = "127.0.0.1:0") -> tuple[Forwarder, Target, int]:
    """A forwarder (not yet serving) from ``listen`` on this machine's loopback to SERVER:PORT."""
    parse_server_port(server_port)
    listen_host, listen_port = parse_listen(listen)
    if not ipaddress.ip_address(listen_host).is_loopback:
        raise LabError(f"--listen {listen}: forwards listen on the loopback only, so nothing else reaches the lab",
                       hint="use 127.0.0.1:PORT (and ssh -L from elsewhere)")
    way = way_to(name, server_port)
    try:
        forwarder = Forwarder((listen_host, listen_port), way.opener)
    except OSError as exc:
        raise LabError(f"cannot listen on {listen}: {exc.strerror}") from None
    return forwarder, way.target, way.port
