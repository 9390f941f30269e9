"""The one way into a lab guest's commands: its guest agent, or its lab login over SSH.

Readiness, clock setting, restores, probes and damages all call ``channel_for``; what
they get has the agent's interface (``exec``, ``run``, ``wait_ready``, ``ping``,
``set_time``, ``hostname``, ``interfaces``, ``write_file``). A server uses its lab login
(``LabServer.login``, chosen at ``lab up`` by ``login_for``) when the spec gives one;
``check_reachable`` refuses, before anything is made, a server with neither a guest agent
that runs commands nor a lab login.
"""

from __future__ import annotations

from pathlib import Path

from ..access.door import namespace_name, open_door
from ..access.guestssh import SshChannel
from ..atomic import atomic_write
from ..errors import LabError
from ..hypervisor import Domain, Hypervisor
from ..snapshot.store import Snapshot
from ..snapshot.guestfacts import NO_EXEC, NONE, keys_through_agent
from ..hostbase import Host
from ..spec import Environment, Server
from .records import LabRecord

KNOWN_HOSTS = "known_hosts"


def channel_for(domain: Domain, record: LabRecord, server: str, timeout: float = 10):
    """The guest command channel of lab server ``server`` (spec name) running as ``domain``."""
    login = record.servers[server].login
    if not login:
        return domain.agent(timeout=timeout)
    return SshChannel(domain.name, namespace_name(record.name), login["ip"], login["port"], login["user"],
                      Path(login["key"]), known_hosts_path(record), timeout=timeout)


def wait_ready(channel, domain: Domain, timeout: float, poll: float = 0.25) -> float:
    """The guest answers: its agent, or its sshd's banner (then a login, so a bad key shows at once)."""
    if isinstance(channel, SshChannel):
        waited = channel.wait_ready(timeout, poll, is_active=domain.is_active)
        channel.run(["true"])
        return waited
    return channel.wait_ready(timeout, poll)


def known_hosts_path(record: LabRecord) -> Path:
    return record.directory / KNOWN_HOSTS


def login_for(server: Server) -> dict:
    """What a lab server's record keeps of its lab login ({} = through its guest agent)."""
    if server.lab_access is None:
        return {}
    ssh = server.lab_access.ssh
    return {"ip": str(server.nics[0].ip), "port": ssh.port, "user": ssh.user, "key": str(ssh.key.expanduser())}


def check_reachable(env: Environment, snapshot: Snapshot) -> None:
    """Every server has a guest agent that runs commands or a lab login; else one line naming it."""
    for server in env.servers:
        copy = snapshot.servers[server.name]
        if server.lab_access is None and copy.agent in (NONE, NO_EXEC):
            why = ("has no guest agent" if copy.agent == NONE
                   else "has a guest agent with guest-exec disabled (treated as agentless)")
            raise LabError(f"server {server.name} {why}: labmgr cannot reach it in a lab",
                           hint=f"give servers[{server.name}].lab_access.ssh (user, key) in the spec, or "
                                "install qemu-guest-agent with guest-exec enabled and capture again")
        if server.lab_access is not None:
            key = server.lab_access.ssh.key.expanduser()
            if not key.is_file():
                raise LabError(f"server {server.name}: lab_access.ssh.key {key} is not a readable file",
                               hint="give the private key whose public key the server accepts")
            if not copy.host_keys:
                raise LabError(f"server {server.name}: snapshot {snapshot.id} knows no SSH host key of it, so "
                               "its lab login cannot be checked",
                               hint="capture a new snapshot (its host keys are read from the captured disk)")


def write_known_hosts(record: LabRecord, env: Environment, snapshot: Snapshot,
                      learned: dict[str, list[str]] | None = None) -> Path:
    """The lab's known_hosts: each server's host keys (learned through the hypervisor at capture,
    or ``learned`` from the lab guest's agent) under its production IPs, hostname and short name;
    ``labmgr ssh`` and lab logins check it."""
    lines = []
    for server in env.servers:
        names = [str(nic.ip) for nic in server.nics] + [server.hostname, server.hostname.split(".")[0]]
        port = server.lab_access.ssh.port if server.lab_access else 22
        if port != 22:
            names += [f"[{nic.ip}]:{port}" for nic in server.nics]
        for key in snapshot.servers[server.name].host_keys or (learned or {}).get(server.name, []):
            lines.append(f"{','.join(dict.fromkeys(names))} {key}\n")
    path = known_hosts_path(record)
    atomic_write(path, "".join(lines))
    return path


def prepare_logins(host: Host, record: LabRecord, env: Environment, snapshot: Snapshot) -> None:
    """Before the lab's guests are reached: its known_hosts, and its door if a server is reached over SSH."""
    write_known_hosts(record, env, snapshot)
    if any(server.lab_access for server in env.servers):
        open_door(host, record, env)


def learn_missing_keys(hypervisor: Hypervisor, record: LabRecord, env: Environment, snapshot: Snapshot) -> None:
    """Host keys the capture could not learn (a snapshot made before labmgr learned them, a disk it
    cannot read) read through each booted lab guest's agent: a trusted channel, never the network."""
    missing = [s for s in env.servers if not snapshot.servers[s.name].host_keys and s.lab_access is None]
    if missing:
        learned = {s.name: keys_through_agent(hypervisor.domain(record.servers[s.name].domain)) for s in missing}
        write_known_hosts(record, env, snapshot, learned)
