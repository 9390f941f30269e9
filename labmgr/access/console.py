"""Consoles of lab servers: the serial console through libvirt, and how to reach graphical ones."""

from __future__ import annotations

from urllib.parse import urlsplit

from lxml import etree

from ..lab import records
from ..spec import load_environment
from .login import find_target


def console_argv(lab: str, server: str) -> list[str]:
    """``virsh console`` of SERVER's lab domain (it hands the terminal over; Ctrl+] leaves)."""
    from ..errors import LabError
    from ..hypervisor import connect

    record = records.load(lab)
    if record.state != "up":
        raise LabError(f"lab {lab} is {record.state}, not up", hint=f"'labmgr lab show {lab}'")
    target = find_target(load_environment(record.spec), server)
    domain = record.servers[target.server.name].domain
    with connect(record.hypervisor) as hypervisor:
        if not hypervisor.has_domain(domain) or hypervisor.domain(domain).state != "running":
            raise LabError(f"server {target.server.name} of lab {lab} is not running",
                           hint=f"'labmgr lab show {lab}'")
    return ["virsh", "-c", record.hypervisor, "console", "--force", domain]


def graphical_consoles(domain_xml: str, hypervisor_uri: str) -> list[str]:
    """One line per VNC/SPICE console of a running domain: where it listens (the hypervisor's
    loopback) and, for a remote hypervisor, the ssh -L line that reaches it."""
    lines = []
    remote = urlsplit(hypervisor_uri)
    for graphics in etree.fromstring(domain_xml.encode()).iter("graphics"):
        kind, port = graphics.get("type"), graphics.get("port")
        if kind not in ("vnc", "spice") or not port or port == "-1":
            continue
        listen = graphics.get("listen") or "127.0.0.1"
        line = f"{kind} on {listen}:{port} of the hypervisor"
        if remote.hostname:
            login = f"{remote.username}@{remote.hostname}" if remote.username else remote.hostname
            line += f"; reach it with: ssh -N -L {port}:{listen}:{port} {login}, then {kind}://127.0.0.1:{port}"
        else:
            line += f" ({kind}://{listen}:{port})"
        lines.append(line)
    return lines


def access_lines(record) -> list[str]:
    """How to reach a lab's servers, for ``lab show``: ssh, forward, console, graphical consoles."""
    from ..errors import LabmgrError
    from ..hosts import host_for
    from ..hypervisor import connect
    from .door import door_address, doors

    lines = []
    try:
        env = load_environment(record.spec)
        host = host_for(record.hypervisor)
        try:
            is_open = record.name in doors(host)
        finally:
            host.close()
        where = ", ".join(f"{door_address(env, n)} in {n.name}" for n in env.networks if n.name in record.networks)
        lines.append(f"door: {'open' if is_open else 'opened on first use'} ({where}); "
                     f"labmgr ssh {record.name} SERVER, labmgr forward {record.name} SERVER:PORT")
        with connect(record.hypervisor) as hypervisor:
            for name, server in record.servers.items():
                if hypervisor.has_domain(server.domain) and hypervisor.domain(server.domain).state == "running":
                    xml = hypervisor.domain(server.domain).xml(inactive=False)
                    lines += [f"{name}: {line}" for line in graphical_consoles(xml, record.hypervisor)]
                    lines.append(f"{name}: serial console: labmgr console {record.name} {name}")
    except LabmgrError as exc:
        lines.append(f"(access paths unknown: {exc})")
    return lines
