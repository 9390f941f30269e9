"""Servers without a usable guest agent, reached by their lab login (SSH through the lab's door).

Production has two servers of the base image, configured through their agents as an
administrator would, then:
- ``web`` loses its agent: the agent channel is unplugged from the domain (live and in
  its definition), so qemu-guest-agent, whose unit is bound to that port, stops and
  never starts again; to the hypervisor and in every lab it is a server without an agent;
- ``gx`` keeps its agent with ``guest-exec`` disabled (``block-rpcs`` in qemu-ga.conf).
Both accept a key for root. Checks are made from outside labmgr: virsh, and the guests
themselves over SSH.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import time
from datetime import datetime, timedelta, timezone

import lxml.etree
import pytest
import yaml

from labmgr.demo import production as prod
from labmgr.dumps.importer import import_dir
from labmgr.dumps.naming import file_name
from labmgr.lab import records
from labmgr.lab.teardown import lab_down
from labmgr.snapshot import capture, delete_snapshot
from labmgr.spec import load_environment
from labmgr.timeparse import format_point

from helpers import labmgr, leftovers, one_line_error

pytestmark = pytest.mark.libvirt
PREFIX = "lmn-"
LAB = "lmn-lab"
T0 = datetime(2026, 11, 21, 6, 0, tzinfo=timezone.utc)
DATA = "/var/lib/app/data"


def virsh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True, text=True, check=check)


def agent_channel(domain_xml: str) -> str:
    """The guest agent's <channel> element of a domain definition."""
    root = lxml.etree.fromstring(domain_xml.encode())
    channel = root.xpath("devices/channel[target/@name='org.qemu.guest_agent.0']")[0]
    return lxml.etree.tostring(channel).decode()


def agent_answers(domain: str) -> bool:
    return virsh("qemu-agent-command", domain, '{"execute":"guest-ping"}', "--timeout", "5", check=False).returncode == 0


@pytest.fixture(scope="module")
def production(hypervisor, base_image, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "lab")], check=True)
    environment = prod.Production(prefix="lmn-p", network="10.86.0.0/24", gateway="10.86.0.1", servers=[
        prod.ProdServer("web", "web01.agentless.test", "10.86.0.11", "52:54:00:86:00:11"),
        prod.ProdServer("gx", "gx01.agentless.test", "10.86.0.12", "52:54:00:86:00:12")])
    prod.create(hypervisor, environment, base_image)
    try:
        for server in environment.servers:
            agent = hypervisor.domain(environment.domain_name(server)).agent(timeout=60)
            agent.run(["sh", "-c", "mkdir -p /root/.ssh && cat > /root/.ssh/authorized_keys && "
                                   f"mkdir -p {DATA} && echo production > {DATA}/state && sync"],
                      stdin=(keys / "lab.pub").read_bytes())
        gx = hypervisor.domain(environment.domain_name(environment.servers[1])).agent(timeout=60)
        gx.run(["sh", "-c", "mkdir -p /etc/qemu && printf '[general]\\nblock-rpcs=guest-exec,guest-exec-status\\n' "
                            "> /etc/qemu/qemu-ga.conf && sync && systemd-run --on-active=1 systemctl restart "
                            "qemu-guest-agent"])
        deadline = time.monotonic() + 240      # the agent restarts a second later; slow on a busy host
        while True:
            time.sleep(2)
            try:
                info = gx.command("guest-info")["supported_commands"]
                if not next(c["enabled"] for c in info if c["name"] == "guest-exec"):
                    break
            except Exception:
                pass
            assert time.monotonic() < deadline, "gx's agent never came back with guest-exec disabled"
        web = environment.domain_name(environment.servers[0])
        for flag, dump in (("--live", ()), ("--config", ("--inactive",))):
            device = keys / f"channel{flag}.xml"
            device.write_text(agent_channel(virsh("dumpxml", *dump, web).stdout))
            result = virsh("detach-device", web, str(device), flag, check=False)
            assert result.returncode == 0, result.stderr
        assert not agent_answers(web) and "guest_agent" not in virsh("dumpxml", "--inactive", web).stdout
        spec = environment.spec()
        for server in spec["servers"]:
            server["dumps"] = [{"name": "data", "kind": "files", "path": DATA}]
        spec["dumps"] = {"store": str(tmp_path_factory.mktemp("store"))}
        plain = tmp_path_factory.mktemp("spec") / "lmn-p.yaml"
        plain.write_text(yaml.safe_dump(spec, sort_keys=False))
        for server in spec["servers"]:
            server["lab_access"] = {"ssh": {"user": "root", "key": str(keys / "lab")}}
        with_login = plain.with_name("lmn-p-login.yaml")
        with_login.write_text(yaml.safe_dump(spec, sort_keys=False))
        env = load_environment(with_login)
        taken = capture(env)
        yield env, plain, with_login, taken, keys
        delete_snapshot(env.name, taken.id)
    finally:
        prod.remove(hypervisor, environment)


def import_hours(env, directory) -> None:
    """A files dump of each server for hours 1 and 2: ``state`` says which hour."""
    for hour in (1, 2):
        for server in env.servers:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                content = f"{server.name} hour {hour}\n".encode()
                member = tarfile.TarInfo("state")
                member.size = len(content)
                tar.addfile(member, io.BytesIO(content))
            name = file_name(server.name, "data", "files", T0 + timedelta(hours=hour), False)
            (directory / name).write_bytes(buffer.getvalue())
    result = import_dir(env, directory)
    assert len(result.added) == 4 and not result.rejected, result


def ssh(*command: str, server: str = "web") -> str:
    result = labmgr("ssh", *login(), LAB, server, "--", *command)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_server_no_way_reaches_is_refused_before_anything_is_made(production, hypervisor) -> None:
    env, plain, with_login, taken, _ = production
    assert taken.servers["web"].agent == "none" and taken.servers["gx"].agent == "no-exec"
    assert taken.servers["web"].host_keys and taken.servers["gx"].host_keys     # disk / disk (no guest-exec)
    line = one_line_error(labmgr("lab", "up", str(plain), "--name", LAB))
    assert "server web has no guest agent" in line and "lab_access" in line and "qemu-guest-agent" in line
    spec = yaml.safe_load(with_login.read_text())
    del spec["servers"][1]["lab_access"]
    only_web = with_login.with_name("lmn-p-web.yaml")
    only_web.write_text(yaml.safe_dump(spec, sort_keys=False))
    line = one_line_error(labmgr("lab", "up", str(only_web), "--name", LAB))
    assert "server gx has a guest agent with guest-exec disabled (treated as agentless)" in line
    assert leftovers(hypervisor, PREFIX[:-1] + "-lab") == []


def test_an_agentless_lab_up_restored_probed_and_down(production, hypervisor, tmp_path) -> None:
    env, _, with_login, _, keys = production
    import_hours(env, tmp_path)
    up = labmgr("lab", "up", str(with_login), "--name", LAB)
    assert up.returncode == 0, up.stderr
    try:
        record = records.load(LAB)
        for server in env.servers:
            domain = record.servers[server.name].domain
            if server.name == "web":
                assert not agent_answers(domain)    # reached over SSH only
            else:                                   # gx's agent answers, but runs nothing
                refused = virsh("qemu-agent-command", domain, '{"execute":"guest-exec","arguments":{"path":"true"}}',
                                check=False)
                assert refused.returncode != 0 and "disabled" in refused.stderr, refused.stderr
            # identity, from inside the guest, through labmgr ssh with host keys checked (never logged in to)
            nic = server.nics[0]
            assert ssh("hostname", server=server.name).strip() == server.hostname
            addresses = ssh("ip", "-o", "-4", "addr", "show", server=server.name)
            assert f"inet {nic.ip}/24" in addresses
            assert nic.mac in ssh("sh", "-c", "cat /sys/class/net/*/address", server=server.name).split()
        # built without a usable agent: in web's lab guest qemu-guest-agent does not run
        assert labmgr("ssh", *login(), LAB, "web", "--", "systemctl", "is-active", "qemu-guest-agent").stdout.strip() \
            in ("inactive", "failed")
        shown = json.loads(labmgr("lab", "show", LAB, "--json").stdout)["point"]
        assert shown["kind"] == "clean" and shown["at"] is None and shown["dumps"] == {}

        for hour in (2, 1):
            at = format_point(T0 + timedelta(hours=hour, minutes=30))
            result = labmgr("lab", "restore", LAB, "--at", at)
            assert result.returncode == 0, result.stderr
            for server in env.servers:
                assert ssh("cat", f"{DATA}/state", server=server.name) == f"{server.name} hour {hour}\n"
            shown = json.loads(labmgr("lab", "show", LAB, "--json").stdout)["point"]
            assert shown["kind"] == "restored" and shown["at"] == at and shown["skew_seconds"] == 0
            assert shown["dumps"] == {f"{s.name}/data": format_point(T0 + timedelta(hours=hour))
                                      for s in env.servers}
            assert shown["since"] and "restored" in shown["how"]
        assert "since" in labmgr("lab", "show", LAB).stdout

        # every probe kind that applies to a server without databases, over SSH
        ssh("sh", "-c", "setsid sh -c 'while true; do printf \"HTTP/1.0 200 OK\\r\\n\\r\\nhello lab\\n\" | "
                        "nc -l -p 8080 -q 1; done' >/dev/null 2>&1 < /dev/null &", server="gx")
        listening(server="gx", port=8080)       # before the probe's one connection, not racing it
        digest = hashlib.sha256(b"web hour 1\n").hexdigest()
        probes = tmp_path / "probes.yaml"
        probes.write_text(yaml.safe_dump({"probes": [
            {"name": "hour", "server": "web", "kind": "command", "command": f"cat {DATA}/state",
             "output_matches": "hour 1"},
            {"name": "sum", "server": "web", "kind": "checksum", "manifest": {f"{DATA}/state": digest}},
            {"name": "ssh-peer", "server": "web", "kind": "tcp", "target": "gx", "port": 22},
            {"name": "web-page", "server": "web", "kind": "http", "target": "gx", "port": 8080,
             "body_matches": "hello lab"},
            {"name": "slow", "server": "gx", "kind": "command", "command": "sleep 30", "timeout": 2},
            {"name": "isolated", "kind": "isolation", "timeout": 20},
            {"name": "gx-up", "server": "gx", "kind": "command", "command": "true"},
        ]}))
        verdicts = run_probes(probes, tmp_path)
        assert {name: passed for name, (passed, _) in verdicts.items()} == {
            "hour": True, "sum": True, "ssh-peer": True, "web-page": True, "slow": False, "isolated": True,
            "gx-up": True}, "\n".join(f"{name}: {verdict}" for name, verdict in verdicts.items())
        assert "did not finish within 2 s" in verdicts["slow"][1]

        # a guest whose host key is not what the hypervisor reported is refused
        ssh("sh", "-c", "rm /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh", server="gx")
        line = one_line_error(labmgr("ssh", *login(), LAB, "gx", "--", "true"))
        assert "does not match what the hypervisor reported" in line
        passed, detail = run_probes(probes, tmp_path, "gx-up")["gx-up"]
        assert not passed and "not the one the hypervisor reported" in detail
    finally:
        down = labmgr("lab", "down", LAB)
    assert down.returncode == 0, down.stderr
    assert leftovers(hypervisor, LAB) == []


def listening(server: str, port: int, seconds: float = 30) -> None:
    """Wait until ``server`` listens on ``port`` (asked with ss: no connection made, none served)."""
    deadline = time.monotonic() + seconds
    while not ssh("ss", "-Hltn", f"sport = :{port}", server=server).strip():
        assert time.monotonic() < deadline, f"{server} does not listen on {port}"
        time.sleep(0.5)


def login() -> list[str]:
    """The lab's key, as a user who holds it passes it (the same one the spec gives labmgr)."""
    return ["-i", records.load(LAB).servers["web"].login["key"], "-l", "root"]


def run_probes(probes, tmp_path, *only: str) -> dict[str, tuple[bool, str]]:
    out = tmp_path / "results.json"
    labmgr("probe", LAB, "--probes", str(probes), "--json", str(out), *(a for o in only for a in ("--only", o)))
    return {r["name"]: (r["passed"], r["detail"]) for r in json.loads(out.read_text())["results"]}


