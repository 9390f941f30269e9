"""The demo's production, built from its spec: three servers, each set up for its role.

The spec (examples/demo/lmdemo.yaml) is the one source of the servers'
hostnames, addresses, MACs and memory: the demo builds production from it and
then points labmgr at it, as a user points labmgr at theirs. Each server then
gets its folder of examples/demo/servers/ and runs its setup.sh, through the
guest agent, as an administrator would have set the server up.
"""

from __future__ import annotations

import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import AgentError, LabmgrError, SpecError
from ..hypervisor import Hypervisor
from ..image import BuiltImage
from ..progress import Reporter
from ..spec import Environment
from . import production as prod
from .workdir import demo_key_path, server_files

GUEST_DIR = "/root/lmdemo"      # where each server's files land before its setup.sh runs
SETUP_TIMEOUT = 600


def production_for(env: Environment, virt_type: str) -> prod.Production:
    """The production the spec describes (one network, one NIC per server, domains named <env>-<server>)."""
    if len(env.networks) != 1:
        raise SpecError(f"the demo builds one production network; {env.name} declares {len(env.networks)}")
    network = env.networks[0]
    servers = []
    for server in env.servers:
        if server.domain != f"{env.name}-{server.name}" or len(server.nics) != 1:
            raise SpecError(f"demo server {server.name}: the demo builds domain '{env.name}-{server.name}' "
                            f"with one NIC; the spec says '{server.domain}' with {len(server.nics)}")
        nic = server.nics[0]
        servers.append(prod.ProdServer(server.name, server.hostname, str(nic.ip), nic.mac,
                                       memory=server.memory or 512, screen=True))
    return prod.Production(prefix=env.name, network=str(network.cidr),
                           gateway=str(network.gateway or next(network.cidr.hosts())), servers=servers,
                           uri=env.hypervisor, virt_type=virt_type)


def build(hypervisor: Hypervisor, production: prod.Production, image: BuiltImage, folder: Path,
          reporter: Reporter) -> None:
    """Boot production and set every server up for its role."""
    with reporter.step(f"production: boot {len(production.servers)} servers, set hostnames and addresses"):
        prod.create(hypervisor, production, image)
    with reporter.step("production: set each server up for its role", total=len(production.servers)) as step:
        def one(server: prod.ProdServer) -> None:
            set_up(hypervisor, production.domain_name(server), folder / "servers" / server.name,
                   server_files(folder, server.name))
            step.advance()

        with ThreadPoolExecutor(max_workers=len(production.servers)) as pool:
            list(pool.map(one, production.servers))
    with reporter.step("production: root's SSH keys (the demo's, and yours)", total=len(production.servers)) as step:
        keys = login_keys(folder)
        for server in production.servers:
            authorize(hypervisor, production.domain_name(server), keys)
            step.advance()


def demo_key(folder: Path) -> Path:
    """The demo's own SSH key (``<demo>/ssh/id_ed25519``), made once: ``labmgr ssh -i`` it."""
    key = demo_key_path(folder)
    if not key.is_file():
        key.parent.mkdir(mode=0o700, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "labmgr-demo", "-f", str(key)],
                       check=True, capture_output=True)
    return key


def login_keys(folder: Path) -> bytes:
    """The demo key's public half and the user's own (``~/.ssh/id_*.pub``), so ``labmgr ssh``
    works with either."""
    keys = [demo_key(folder).with_suffix(".pub")] + sorted((Path.home() / ".ssh").glob("id_*.pub"))
    return b"".join(k.read_bytes().rstrip(b"\n") + b"\n" for k in keys if k.is_file())


def authorize(hypervisor: Hypervisor, domain_name: str, keys: bytes) -> None:
    agent = hypervisor.domain(domain_name).agent(timeout=60)
    agent.run(["sh", "-c", "umask 077 && mkdir -p /root/.ssh && cat > /root/.ssh/authorized_keys && sync"], stdin=keys)


def set_up(hypervisor: Hypervisor, domain_name: str, directory: Path, files: list[Path]) -> None:
    """Copy the server's files into it and run its setup.sh, if it has one."""
    agent = hypervisor.domain(domain_name).agent(timeout=60)
    agent.run(["mkdir", "-p", GUEST_DIR])
    for path in files:
        target = f"{GUEST_DIR}/{path.relative_to(directory).as_posix()}"
        mode = "0755" if path.stat().st_mode & 0o100 else "0644"
        agent.run(["sh", "-c", f"mkdir -p \"$(dirname {shlex.quote(target)})\" && cat > {shlex.quote(target)} "
                               f"&& chmod {mode} {shlex.quote(target)}"], stdin=path.read_bytes())
    if (directory / "setup.sh").is_file():
        try:
            agent.run(["sh", f"{GUEST_DIR}/setup.sh"], timeout=SETUP_TIMEOUT)
        except AgentError as exc:
            raise LabmgrError(f"setting up production server {domain_name} failed: {exc}",
                              hint=f"its console: virsh console {domain_name} (root / labmgr)") from None
