"""What each server of a lab looks like from inside, as its guest agent reports it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import LabmgrError
from ..history import history_for
from ..history_evidence import consoles_of
from ..hypervisor import connect
from ..spec import load_environment
from . import records
from .guestchannel import channel_for


@dataclass
class ServerInfo:
    server: str
    domain: str
    state: str                       # libvirt's domain state
    hostname: str                    # production's, from the spec
    ips: list[str]                   # production's, from the spec
    guest_hostname: str = ""         # what the guest agent says
    guest_ips: list[str] = field(default_factory=list)
    agent_error: str = ""
    access: list[str] = field(default_factory=list)   # ways in, as commands a person types
    console_tail: str = ""           # the serial console's last lines, kept with the newest probe run
    screenshot: str = ""             # that run's screenshot (a PNG under the state directory)


def console_command(hypervisor_uri: str, domain: str) -> list[str]:
    return ["virsh", "-c", hypervisor_uri, "console", domain]


def server_info(name: str) -> list[ServerInfo]:
    record = records.load(name)
    env = load_environment(record.spec)
    out = []
    with history_for(env) as history:
        newest = history.db.execute("SELECT max(id) FROM history_probe_runs WHERE lab = ? AND environment = ?",
                                    (name, env.name)).fetchone()[0]
        consoles = {c.server: c for c in consoles_of(history, newest)} if newest else {}
    with connect(record.hypervisor) as hypervisor:
        for server in env.servers:
            lab_server = record.servers.get(server.name)
            if lab_server is None:
                continue
            info = ServerInfo(server.name, lab_server.domain, "missing", server.hostname,
                              [str(nic.ip) for nic in server.nics],
                              access=[f"labmgr ssh {name} {server.hostname}",
                                      f"labmgr forward {name} {server.hostname}:PORT --listen 127.0.0.1:PORT",
                                      f"labmgr console {name} {server.name}"])
            if server.name in consoles:
                info.console_tail, info.screenshot = consoles[server.name].serial_tail, consoles[server.name].screenshot
            try:
                domain = hypervisor.domain(lab_server.domain)
                info.state = domain.state
                if info.state == "running":
                    agent = channel_for(domain, record, server.name, timeout=5)
                    info.guest_hostname = agent.hostname()
                    info.guest_ips = [ip for nic in agent.interfaces() if nic["name"] != "lo" for ip in nic["ipv4"]]
            except LabmgrError as exc:       # one silent guest must not hide the others
                info.agent_error = str(exc)
            out.append(info)
    return out
