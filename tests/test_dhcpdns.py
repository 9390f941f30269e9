"""DHCP and DNS inside a lab, on real guests (docs/access.md, "DHCP and DNS in the lab").

Production: db with a static address, and app taking its address from a DHCP
reservation and reaching db by a name only DNS knows (not in its /etc/hosts). The
test's own dnsmasq plays production's DHCP and DNS server, in a namespace on
production's bridge at the resolver address. The lab must serve both from its
door, only inside the lab, and leave nothing behind.
"""

from __future__ import annotations

import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from labmgr.access import dnsdhcp
from labmgr.access.door import close_door, namespace_name
from labmgr.demo import production as prod
from labmgr.dumps.hourly import collect
from labmgr.hosts import host_for
from labmgr.lab import records
from labmgr.lab.up import lab_up
from labmgr.snapshot import capture, delete_snapshot
from labmgr.spec import load_environment
from labmgr.spec.model import Environment
from labmgr.timeparse import format_point

from helpers import labmgr, leftovers
from netclients import dhcp_offer, dns_query, in_namespace

pytestmark = pytest.mark.libvirt
LAB = "lmd-lab"
DNS = "10.86.0.53"
T0 = datetime(2026, 11, 21, 6, 0, tzinfo=timezone.utc)
NOTES = "/srv/notes"
DB = prod.ProdServer("db", "db01.corp.test", "10.86.0.11", "52:54:00:86:00:11")
APP = prod.ProdServer("app", "app01.corp.test", "10.86.0.12", "52:54:00:86:00:12")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def attach_namespace(name: str, bridge: str, address: str | None) -> str:
    """A namespace of the test's with a veth end on ``bridge`` (and ``address``); the inner interface."""
    outer, inner = f"{name}-h"[:15], f"{name}-n"[:15]
    sh("ip", "netns", "del", name, check=False)
    sh("ip", "link", "del", outer, check=False)
    sh("ip", "netns", "add", name)
    sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
    sh("ip", "link", "set", inner, "netns", name)
    sh("ip", "link", "set", outer, "master", bridge, "up")
    if address:
        sh("ip", "-n", name, "addr", "add", address, "dev", inner)
    sh("ip", "-n", name, "link", "set", inner, "up")
    return inner


def detach_namespace(name: str) -> None:
    sh("ip", "link", "del", f"{name}-h"[:15], check=False)
    sh("ip", "netns", "del", name, check=False)


def running(pid: int) -> bool:
    """A process that has not ended (a zombie waiting for its parent has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def write(agent, path: str, content: str) -> None:
    agent.run(["sh", "-c", f"cat > {path}"], stdin=content.encode())


@pytest.fixture(scope="module")
def production(hypervisor, base_image, tmp_path_factory):
    """Production with its own DHCP and DNS server; app configured for DHCP, db's name only in DNS."""
    environment = prod.Production(prefix="lmd-p", network="10.86.0.0/24", gateway="10.86.0.1", servers=[DB, APP])
    work = tmp_path_factory.mktemp("lmd")
    server = None
    try:
        prod.create(hypervisor, environment, base_image)
        inner = attach_namespace("lmd-pdns", environment.bridge, f"{DNS}/24")
        server = subprocess.Popen(
            ["ip", "netns", "exec", "lmd-pdns", "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
             "--bind-interfaces", f"--interface={inner}", "--except-interface=lo",
             f"--host-record={DB.hostname},{DB.ip}", f"--host-record={APP.hostname},{APP.ip}",
             f"--dhcp-range={environment.network.split('/')[0]},static,255.255.255.0,1h",
             f"--dhcp-host={APP.mac},{APP.ip}", f"--dhcp-option=option:router,{environment.gateway}",
             f"--dhcp-option=option:dns-server,{DNS}", f"--dhcp-leasefile={work / 'leases'}",
             f"--pid-file={work / 'pid'}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        app = hypervisor.domain(environment.domain_name(APP)).agent(timeout=60)
        write(app, "/etc/hosts", f"127.0.0.1 localhost\n{APP.ip} {APP.hostname} app01\n")   # no db: only DNS knows it
        write(app, "/etc/resolv.conf", f"nameserver {DNS}\n")
        write(app, "/etc/systemd/network/05-labmgr-lan.network",
              f"[Match]\nMACAddress={APP.mac}\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\n")
        app.run(["sh", "-c", "ip -4 addr flush dev $(ip -o link | awk -F': ' '/ether/ {print $2; exit}') && "
                             "systemctl restart systemd-networkd"], timeout=60)
        deadline = time.monotonic() + 60
        while APP.mac not in ((work / "leases").read_text() if (work / "leases").exists() else ""):
            assert time.monotonic() < deadline, "production's app never took its DHCP lease"
            time.sleep(1)
        app.run(["sh", "-c", f"for i in $(seq 30); do ip -4 -o addr | grep -q {APP.ip}/ && exit 0; sleep 1; done; "
                             "exit 1"], timeout=60)
        assert app.run(["getent", "hosts", DB.hostname]).split()[0] == DB.ip    # through production's DNS
        app.run(["mkdir", "-p", NOTES])
        app.run(["sync"])
        spec = environment.spec()
        spec["networks"][0].update(dhcp=True, dns=DNS)
        spec["servers"][1]["dumps"] = [{"name": "notes", "kind": "files", "path": NOTES, "via": "agent"}]
        spec["dumps"] = {"store": str(work / "store")}
        path = work / "lmd-p.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        env = load_environment(path)
        for hour in (1, 2):
            app.run(["sh", "-c", f"echo hour {hour} > {NOTES}/h{hour}"])
            result = collect(env, taken_at=T0 + timedelta(hours=hour))
            assert not result.failed, result.failed
        yield environment, env, path, app
    finally:
        if server is not None:
            server.kill()
            server.wait()
        detach_namespace("lmd-pdns")
        prod.remove(hypervisor, environment)


@pytest.fixture(scope="module")
def lab(hypervisor, production):
    """The lab, up; at the end ``lab down`` must leave no dnsmasq, no door and no file."""
    _, env, path, _ = production
    taken = capture(env)
    try:
        record = lab_up(env, path, name=LAB)
        with host_for(record.hypervisor) as host:
            pid = dnsdhcp.running_pid(host, record)
        assert pid is not None and sh("ip", "netns", "identify", str(pid)).stdout.strip() == namespace_name(LAB)
        yield record, {s.name: hypervisor.domain(record.servers[s.name].domain).agent(timeout=60)
                       for s in env.servers}
        down = labmgr("lab", "down", LAB)
        assert down.returncode == 0, down.stderr
        assert not running(pid)                                                       # its dnsmasq is gone
        assert str(dnsdhcp.folder_of(record)) not in sh("ps", "-eo", "args").stdout
        assert not records.lab_dir(LAB).exists() and not Path(record.host_directory).exists()
        assert leftovers(hypervisor, LAB) == []
    finally:
        labmgr("lab", "down", LAB)
        delete_snapshot(env.name, taken.id)


def at(hour: int) -> str:
    return format_point(T0 + timedelta(hours=hour, minutes=30))


def check_identity(agents) -> None:
    """From inside each guest: production's hostname, IP on production's MAC; app's address leased
    from the lab's door; db reached by the name only DNS knows, at its lab address."""
    for server, agent in agents.items():
        spec = {"db": DB, "app": APP}[server]
        assert agent.run(["hostname"]).strip() == spec.hostname
        links = agent.run(["ip", "-o", "link"])
        addresses = agent.run(["ip", "-o", "-4", "addr"])
        interface = next(line.split(": ")[1] for line in links.splitlines() if spec.mac in line)
        assert any(line.split()[1] == interface and f" {spec.ip}/24 " in line for line in addresses.splitlines())
    app = agents["app"]
    lease = app.run(["sh", "-c", "cat /run/systemd/netif/leases/*"])
    assert f"ADDRESS={APP.ip}" in lease and "SERVER_ADDRESS=10.86.0.254" in lease     # the door's address
    assert app.run(["getent", "hosts", DB.hostname]).split()[0] == DB.ip
    app.run(["bash", "-c", f"exec 3<>/dev/tcp/{DB.hostname}/22"])        # raises unless db's sshd answers


def test_dhcp_and_dns_in_the_lab_through_restores_and_probes(lab, tmp_path) -> None:
    record, agents = lab
    check_identity(agents)
    with host_for(record.hypervisor) as host:
        log = host.run(["cat", str(dnsdhcp.folder_of(record) / dnsdhcp.LOG)]).stdout
    assert f"query[A] {DB.hostname} from {APP.ip}" in log           # answered by this lab's door
    probes = tmp_path / "probes.yaml"
    probes.write_text(yaml.safe_dump({"probes": [
        {"name": "isolated", "kind": "isolation", "targets": ["203.0.113.10", "203.0.113.10:53"]},
        {"name": "app-reaches-db", "kind": "tcp", "server": "app", "target": "db", "port": 22},
        {"name": "db-by-dns", "kind": "command", "server": "app", "command": f"getent hosts {DB.hostname}",
         "output_matches": rf"^{DB.ip}\s"},
    ]}))
    for hour in (2, 1):
        restored = labmgr("lab", "restore", LAB, "--at", at(hour))
        assert restored.returncode == 0, restored.stderr
        assert agents["app"].run(["ls", NOTES]).split() == [f"h{h}" for h in range(1, hour + 1)]
        check_identity(agents)                          # the clean point had the DHCP address already
        probed = labmgr("probe", LAB, "--probes", str(probes))
        assert probed.returncode == 0, probed.stdout + probed.stderr
        assert "4 of 4 probes passed" in probed.stdout, probed.stdout
        assert f"lab DNS of lan (the lab's door) {DNS}:53" in probed.stdout, probed.stdout


def test_the_lab_answers_nothing_outside_the_environment(lab, production) -> None:
    record, agents = lab
    for name in ("example.com", "mail01.corp.test"):          # the outside world, a production name not in the spec
        assert agents["app"].run(["sh", "-c", f"getent hosts {name}; echo $?"]).strip() == "2"
    inner = attach_namespace("lmd-cl", record.networks["lan"].bridge, "10.86.0.200/24")
    try:
        ask = lambda name: in_namespace("lmd-cl", lambda: dns_query(DNS, name))       # noqa: E731
        assert ask(DB.hostname) == ("NOERROR", [DB.ip])
        assert ask("example.com") == ("NXDOMAIN", [])
        assert ask("mail01.corp.test") == ("NXDOMAIN", [])
        assert in_namespace("lmd-cl", lambda: dhcp_offer(inner, APP.mac)) == APP.ip      # a reservation answers
        assert in_namespace("lmd-cl", lambda: dhcp_offer(inner, "52:54:00:86:00:99")) is None   # no pool
    finally:
        detach_namespace("lmd-cl")


def test_gc_ends_the_dnsmasq_of_a_door_whose_lab_is_gone(tmp_path) -> None:
    """A lab up killed after its DHCP and DNS started leaves a door with a dnsmasq in it and no lab
    that is up: ``lab gc`` ends the process with the door (checked from /proc, not from labmgr)."""
    lab, bridge = "lmd-gone", "lmd-gone-br"
    env = Environment.model_validate({"name": "lmd-g", "networks": [
        {"name": "lan", "cidr": "10.87.0.0/24", "dhcp": True, "dns": DNS.replace("86", "87")}], "servers": [
        {"name": "app", "hostname": APP.hostname, "domain": "none", "nics": [
            {"network": "lan", "ip": "10.87.0.12", "mac": APP.mac}]}]})
    record = SimpleNamespace(name=lab, networks={"lan": SimpleNamespace(bridge=bridge)},
                             host_directory=tmp_path)
    sh("ip", "link", "add", bridge, "type", "bridge")
    try:
        sh("ip", "link", "set", bridge, "up")
        with host_for("qemu:///system") as host:
            assert dnsdhcp.start(host, record, env)
            pid = dnsdhcp.running_pid(host, record)
        assert pid is not None and running(pid)
        gc = labmgr("lab", "gc")
        assert gc.returncode == 0, gc.stderr
        deadline = time.monotonic() + 5
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(pid)
        assert namespace_name(lab) not in sh("ip", "netns", "list").stdout
    finally:
        with host_for("qemu:///system") as host:
            close_door(host, lab)
        sh("ip", "link", "del", bridge, check=False)
