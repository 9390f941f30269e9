"""Labs on real libvirt with real QEMU guests: capture, two labs at once, isolation,
production untouched, nothing left behind."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import yaml
from lxml import etree

from labmgr import paths
from labmgr.dumps.store import store_root
from labmgr.lab import records
from labmgr.lab.teardown import lab_down
from labmgr.lab.up import lab_up
from labmgr.probes import load_probes, run_probes
from labmgr.snapshot import capture, delete_snapshot
from labmgr.spec import load_environment

from helpers import REPO, backing_chain, labmgr, leftovers, one_line_error, sha256

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
def labs(env, spec_file, snapshot, hypervisor, production, before):
    """The labs every test here looks at. Their end is checked too (lab_down_leaves_nothing_and_production_untouched):
    it removes them, so it is this fixture's end rather than a test that would have to run last."""
    made = []
    try:
        for name in LABS:
            made.append(lab_up(env, spec_file, name=name, snapshot_id=snapshot.id))
        yield {record.name: record for record in made}
        lab_down_leaves_nothing_and_production_untouched(hypervisor, production, before)
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


def test_the_isolation_probe_passes_in_each_lab_and_fails_in_production(hypervisor, env, production,
                                                                       gateway_sentinel, labs, tmp_path) -> None:
    """One isolation probe, from every server: in a lab the production gateway and the sentinel are
    silent while the peer answers; run through production's own agents it names what answers."""
    sentinel = f"{gateway_sentinel['ip']}:{gateway_sentinel['port']}"
    path = tmp_path / "probes.yaml"
    path.write_text(yaml.safe_dump({"probes": [{"name": "isolated", "kind": "isolation", "targets": [sentinel]}]}))
    probes = load_probes(path, env)
    gateway = gateway_sentinel["ip"]
    for record in labs.values():
        results = run_probes(record, env, probes)
        assert [r.server for r in results] == ["db", "app"]
        for result, peer in zip(results, ("app 10.77.0.12", "db 10.77.0.11")):
            assert result.passed, (record.name, result.detail, result.output_tail)
            assert result.detail == (f"isolated: from {result.server}, 4 outside addresses silent ({sentinel}, "
                                     f"{gateway}, {gateway}:22, {gateway}:443); 1 lab peers answer ({peer})")
    in_production = run_probes(SimpleNamespace(name="production", point={}), env, probes, agent_for=lambda server:
                               hypervisor.domain(f"{production.prefix}-{server}").agent(timeout=30))
    for result in in_production:
        assert not result.passed
        assert result.detail.startswith(f"not isolated: from {result.server}, outside address {sentinel} answers "
                                        f"(connected), production gateway of lan {gateway} answers (ping)"), \
            result.detail


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


# logging in: the door, ssh, forward ------------------------------------------------

@pytest.fixture(scope="module")
def ssh_key(hypervisor, labs, tmp_path_factory):
    """A key of the test's own, authorised for root in every lab server; each server says which lab it is in."""
    directory = tmp_path_factory.mktemp("ssh")
    key = directory / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = (directory / "id_ed25519.pub").read_text()
    for record in labs.values():
        for server in record.servers:
            agent = agent_of(hypervisor, record, server)
            agent.run(["sh", "-c", "mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys"],
                      stdin=public.encode())
            agent.run(["sh", "-c", f"echo {record.name} > /etc/lab-name"])
    return key


@pytest.fixture(scope="module")
def doors(labs):
    """Each lab's door, opened as a first login opens it, for the tests that look at it in any order."""
    from labmgr.access.login import door

    return {name: door(name) for name in LABS}


def ssh_options(key) -> list[str]:
    return ["-i", str(key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-l", "root"]


def test_ssh_by_production_ip_and_hostname_lands_in_its_own_lab(labs, ssh_key) -> None:
    for name in LABS:
        for target in ("10.77.0.11", "db01.shop.test", "app01"):
            result = labmgr("ssh", *ssh_options(ssh_key), name, target, "--",
                            "cat /etc/lab-name; hostname", timeout=120)
            assert result.returncode == 0, (name, target, result.stderr)
            expected_host = "app01.shop.test" if target == "app01" else "db01.shop.test"
            assert result.stdout.split() == [name, expected_host], (name, target, result.stdout)
    # checked against the lab's known_hosts: the keys the capture learned through the hypervisor,
    # under the production IPs and hostnames (no user's known_hosts had them)
    for name in LABS:
        for host in ("10.77.0.11", "db01.shop.test", "app01.shop.test", "app01"):
            found = subprocess.run(["ssh-keygen", "-F", host, "-f", str(records.lab_dir(name) / "known_hosts")],
                                   capture_output=True, text=True)
            assert found.returncode == 0, f"{host} is not in lab {name}'s known_hosts"
    exit_code = labmgr("ssh", *ssh_options(ssh_key), "lmt-a", "db", "--", "exit 3", timeout=120)
    assert exit_code.returncode == 3 and exit_code.stderr == ""


def test_the_door_reaches_the_lab_and_nothing_else(labs, doors, gateway_sentinel) -> None:
    from labmgr.access.door import namespace_name

    for name in LABS:
        namespace = namespace_name(name)
        routes = subprocess.run(["ip", "-n", namespace, "-4", "route"], capture_output=True, text=True,
                                check=True).stdout
        assert routes.split() == ["10.77.0.0/24", "dev", routes.split()[2], "proto", "kernel", "scope", "link",
                                  "src", "10.77.0.254"], routes
        links = subprocess.run(["ip", "-n", namespace, "-o", "link"], capture_output=True, text=True).stdout
        assert len(links.splitlines()) == 2, links            # lo and the one veth end
        peer = subprocess.run(["ip", "netns", "exec", namespace, "bash", "-c", "exec 3<>/dev/tcp/10.77.0.11/22"],
                              capture_output=True, text=True, timeout=30)
        assert peer.returncode == 0, peer.stderr
        outside = subprocess.run(["ip", "netns", "exec", namespace, "timeout", "8", "bash", "-c",
                                  f"exec 3<>/dev/tcp/{gateway_sentinel['ip']}/{gateway_sentinel['port']}"],
                                 capture_output=True, text=True, timeout=30)
        assert outside.returncode != 0
        host = subprocess.run(["ip", "netns", "exec", namespace, "bash", "-c", "exec 3<>/dev/tcp/192.0.2.1/80"],
                              capture_output=True, text=True, timeout=30)
        assert "Network is unreachable" in host.stderr         # no default route: nothing leaves


def test_forward_brings_a_lab_web_server_to_this_machines_loopback(hypervisor, labs) -> None:
    import urllib.request

    forwarders = {}
    try:
        for name, record in labs.items():
            page = f"<html><footer>{name} v1.4.2</footer></html>"
            web = f"while :; do printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/html\\r\\n\\r\\n{page}' | nc -l -N 80; done"
            agent_of(hypervisor, record, "app").run(["sh", "-c", f"setsid sh -c \"{web}\" </dev/null >/dev/null 2>&1 &"])
            process = subprocess.Popen([sys.executable, "-m", "labmgr", "forward", name, "app01.shop.test:80"],
                                       cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            forwarders[name] = process
            line = process.stdout.readline()
            assert line.startswith("forwarding 127.0.0.1:"), line + process.stderr.read()
            port = int(line.split()[1].split(":")[1])
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                        body = response.read().decode()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the lab web server never answered through the forward"
                    time.sleep(1)
            assert body.strip() == page
    finally:
        for process in forwarders.values():
            process.terminate()
            process.wait(timeout=10)


def test_login_bad_input_is_one_line_each(labs, ssh_key, tmp_path) -> None:
    unknown = one_line_error(labmgr("ssh", "lmt-a", "mail01", "--", "true"))
    assert "'mail01' is not a server of environment lmt-prod" in unknown
    missing = one_line_error(labmgr("ssh", "lmt-nolab", "db", "--", "true"))
    assert "no lab named 'lmt-nolab'" in missing
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    refused = one_line_error(labmgr("ssh", *ssh_options(stranger), "lmt-a", "db01.shop.test", "--",
                                    "true", timeout=120))
    assert "SSH key refused by db01.shop.test (10.77.0.11) in lab lmt-a" in refused
    # the lab server's host key is not the one the lab's known_hosts has for db01.shop.test: refused
    kind, blob = (tmp_path / "stranger.pub").read_text().split()[:2]
    lab_known = records.lab_dir("lmt-a") / "known_hosts"
    learned = lab_known.read_text()
    try:
        lab_known.write_text(f"db01.shop.test,10.77.0.11 {kind} {blob}\n")
        changed = one_line_error(labmgr("ssh", *ssh_options(ssh_key), "lmt-a", "db01.shop.test", "--", "true",
                                        timeout=120))
    finally:
        lab_known.write_text(learned)
    assert "host key of db01.shop.test (10.77.0.11) in lab lmt-a does not match what the hypervisor reported" \
        in changed
    switched_off = one_line_error(labmgr("ssh", "-o", "StrictHostKeyChecking=no", "lmt-a", "db", "--", "true"))
    assert "checks host keys against the lab's known_hosts" in switched_off
    bad_listen = one_line_error(labmgr("forward", "lmt-a", "app:80", "--listen", "0.0.0.0:8080"))
    assert "forwards listen on the loopback only" in bad_listen
    console = one_line_error(labmgr("console", "lmt-a", "mail01"))
    assert "'mail01' is not a server" in console


def test_lab_show_says_how_to_get_in(labs, doors) -> None:
    shown = labmgr("lab", "show", "lmt-a")
    assert shown.returncode == 0, shown.stderr
    assert "door: open (10.77.0.254/24 in lan); labmgr ssh lmt-a SERVER" in shown.stdout
    assert "db: serial console: labmgr console lmt-a db" in shown.stdout


def lab_down_leaves_nothing_and_production_untouched(hypervisor, production, before) -> None:
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


def test_gc_removes_a_door_whose_lab_is_gone(hypervisor) -> None:
    from labmgr.access.door import namespace_name

    namespace = namespace_name("lmt-ghost")
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        result = labmgr("lab", "gc")
        assert result.returncode == 0, result.stderr
        assert "removed lmt-ghost (0 domains, 0 networks, its door)" in result.stdout
        assert leftovers(hypervisor, "lmt-ghost") == []
    finally:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
