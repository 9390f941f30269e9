"""Labs on real libvirt with real QEMU guests: capture, two labs at once, isolation,
production untouched, nothing left behind."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import pytest
from lxml import etree

from labmgr import paths
from labmgr.dumps.store import store_root
from labmgr.lab import records
from labmgr.lab.teardown import lab_down
from labmgr.lab.up import lab_up
from labmgr.snapshot import capture, delete_snapshot
from labmgr.spec import load_environment

from helpers import REPO, backing_chain, labmgr, leftovers, sha256

pytestmark = pytest.mark.libvirt
LABS = ("lmt-a", "lmt-b")


def fingerprint(hypervisor, production) -> dict:
    """What must never change in production: definitions, backing chains, the unmounted data disk."""
    out = {}
    for server in production.servers:
        domain = hypervisor.domain(production.domain_name(server))
        disks = production.disk_paths(server)
        out[server.name] = {
            "xml": domain.xml(inactive=True),
            "chain": backing_chain(disks[0]),
            "data": sha256(disks[1]) if len(disks) > 1 else None,
            "files": sorted(p.name for p in production.directory.iterdir()),
        }
    return out


@pytest.fixture(scope="module")
def env(spec_file):
    environment = load_environment(spec_file)
    yield environment
    shutil.rmtree(store_root(environment), ignore_errors=True)     # the labs' history, kept next to the dumps


@pytest.fixture(scope="module")
def before(hypervisor, production):
    return fingerprint(hypervisor, production)


@pytest.fixture(scope="module")
def snapshot(env, before):
    taken = capture(env)
    yield taken
    delete_snapshot(env.name, taken.id)


@pytest.fixture(scope="module")
def labs(env, spec_file, snapshot, hypervisor):
    made = []
    try:
        for name in LABS:
            made.append(lab_up(env, spec_file, name=name, snapshot_id=snapshot.id))
        yield {record.name: record for record in made}
    finally:
        for name in LABS:
            if records.lab_dir(name).exists() or leftovers(hypervisor, name):
                lab_down(name, hypervisor_uri="qemu:///system")


def agent_of(hypervisor, record, server):
    return hypervisor.domain(record.servers[server].domain).agent(timeout=30)


def test_capture_uses_the_backup_api_with_frozen_guests(snapshot, production) -> None:
    for server in production.servers:
        copy = snapshot.servers[server.name]
        assert copy.method == "backup" and copy.frozen and copy.state == "running"
        for disk in copy.disks:
            image = snapshot.file(disk.image)
            assert backing_chain(image) == [(str(image), None)]    # self-contained
    db = production.servers[0]
    copied = snapshot.file(snapshot.servers["db"].disks[1].image)
    compare = subprocess.run(["qemu-img", "compare", "-U", str(production.disk_paths(db)[1]), str(copied)],
                             capture_output=True, text=True)
    assert compare.returncode == 0, compare.stdout + compare.stderr


def test_capture_leaves_production_untouched(hypervisor, production, before, snapshot) -> None:
    assert fingerprint(hypervisor, production) == before


def test_snapshot_list_shows_it(spec_file, snapshot) -> None:
    result = labmgr("snapshot", "list", str(spec_file))
    assert result.returncode == 0 and snapshot.id in result.stdout and "db:backup+frozen" in result.stdout


def test_every_lab_server_has_production_identity(hypervisor, env, labs) -> None:
    for record in labs.values():
        for server in env.servers:
            agent = agent_of(hypervisor, record, server.name)
            assert agent.hostname() == server.hostname
            interfaces = {nic["mac"]: nic["ipv4"] for nic in agent.interfaces()}
            for nic in server.nics:
                assert str(nic.ip) in interfaces.get(nic.mac, []), (record.name, server.name, interfaces)


def test_peers_reach_each_other_across_the_lab_bridge(hypervisor, env, labs) -> None:
    for record in labs.values():
        db = agent_of(hypervisor, record, "db")
        app_ip = str(env.server("app").nics[0].ip)
        result = db.exec(["ping", "-c", "2", "-W", "5", app_ip], timeout=30)
        assert result.ok, f"{record.name}: db cannot reach app: {result.stdout}{result.stderr}"


def test_each_lab_has_its_own_isolated_bridge(hypervisor, labs) -> None:
    bridges = [net.bridge for record in labs.values() for net in record.networks.values()]
    assert len(set(bridges)) == len(bridges) and all(len(b) <= 15 for b in bridges)
    for record in labs.values():
        for net in record.networks.values():
            xml = etree.fromstring(hypervisor.network_xml(net.name).encode())
            assert xml.find("forward") is None and xml.find("ip") is None
            addresses = subprocess.run(["ip", "-o", "addr", "show", "dev", net.bridge],
                                       capture_output=True, text=True, check=True).stdout
            assert addresses.strip() == "", f"the host has an address in {net.bridge}: {addresses}"


def test_nothing_outside_the_lab_answers(hypervisor, production, gateway_sentinel, labs) -> None:
    gateway, port = gateway_sentinel["ip"], str(gateway_sentinel["port"])
    # control: from production the gateway and the sentinel answer, so silence in a lab means isolation
    prod_db = hypervisor.domain(production.domain_name(production.servers[0])).agent(timeout=30)
    assert prod_db.exec(["ping", "-c", "1", "-W", "5", gateway], timeout=30).ok
    assert prod_db.exec(["nc", "-z", "-w", "5", gateway, port], timeout=30).ok
    for record in labs.values():
        for server in record.servers:
            agent = agent_of(hypervisor, record, server)
            assert not agent.exec(["ping", "-c", "2", "-W", "2", gateway], timeout=30).ok
            assert not agent.exec(["nc", "-z", "-w", "3", gateway, port], timeout=30).ok


def test_lab_definitions_pass_virt_xml_validate(hypervisor, labs, tmp_path) -> None:
    for record in labs.values():
        documents = [("domain", hypervisor.domain(s.domain).xml()) for s in record.servers.values()]
        documents += [("network", hypervisor.network_xml(n.name)) for n in record.networks.values()]
        for i, (kind, xml) in enumerate(documents):
            path = tmp_path / f"{record.name}-{i}.xml"
            path.write_text(xml)
            result = subprocess.run(["virt-xml-validate", str(path), kind], capture_output=True, text=True)
            assert result.returncode == 0, result.stderr


def test_lab_list_and_show(labs) -> None:
    listing = labmgr("lab", "list")
    assert listing.returncode == 0
    for name in LABS:
        line = next(line for line in listing.stdout.splitlines() if line.startswith(name))
        assert "up" in line and "2/2 running" in line
    shown = labmgr("lab", "show", "lmt-a")
    assert shown.returncode == 0 and "db01.shop.test" in shown.stdout and "no host address" in shown.stdout


def test_lab_down_leaves_nothing_and_production_untouched(hypervisor, production, before, labs) -> None:
    for name in LABS:
        result = labmgr("lab", "down", name)
        assert result.returncode == 0, result.stderr
        assert leftovers(hypervisor, name) == []
    assert fingerprint(hypervisor, production) == before


def kill_lab_up_halfway(spec_file, name: str, hypervisor) -> None:
    """Start `labmgr lab up` and SIGKILL it once its domains are booting."""
    process = subprocess.Popen([sys.executable, "-m", "labmgr", "lab", "up", str(spec_file), "--name", name],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    domain = f"{name}-app"
    while not (hypervisor.has_domain(domain) and hypervisor.domain(domain).is_active()):
        assert process.poll() is None, "lab up ended before it could be killed"
        assert time.monotonic() < deadline, "lab up never started its domains"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert leftovers(hypervisor, name), "nothing was half-made: the kill came too late to test anything"


@pytest.mark.parametrize("cleanup", ["gc", "down"])
def test_a_killed_lab_up_is_cleaned_completely(hypervisor, spec_file, snapshot, cleanup) -> None:
    name = f"lmt-kill-{cleanup}"
    kill_lab_up_halfway(spec_file, name, hypervisor)
    result = labmgr("lab", "gc") if cleanup == "gc" else labmgr("lab", "down", name)
    assert result.returncode == 0, result.stderr
    assert name in result.stdout
    assert leftovers(hypervisor, name) == []
    assert not list(paths.labs_dir().glob(f"{name}*"))
