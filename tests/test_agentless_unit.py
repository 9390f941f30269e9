"""Agentless servers and lab host keys, the pure logic: who is refused, what the lab's known_hosts
says, how labmgr ssh checks keys, what lab show says of the point in time."""

from __future__ import annotations

from pathlib import Path

import pytest

from labmgr.access.ssh import ssh_argv
from labmgr.errors import LabError
from labmgr.lab import guestchannel
from labmgr.lab.inventory import point_of
from labmgr.lab.records import LabRecord, LabServer
from labmgr.snapshot.guestfacts import NONE, _key_lines, agent_state
from labmgr.snapshot.store import ServerCopy, Snapshot
from labmgr.spec.model import Environment
from labmgr.xml.builder import DomainXML

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGk2EAYMrmHuhZ7c/RMKG56M0xHwYZy5SoaVlOfpITbs"


def env(tmp_path: Path, login: bool = True) -> Environment:
    key = tmp_path / "lab_key"
    key.write_text("not really a key\n")
    servers = [{"name": "web", "hostname": "web01.shop.test", "domain": "prod-web",
                "nics": [{"network": "lan", "ip": "10.90.0.11", "mac": "52:54:00:90:00:11"}]},
               {"name": "db", "hostname": "db01.shop.test", "domain": "prod-db",
                "nics": [{"network": "lan", "ip": "10.90.0.12", "mac": "52:54:00:90:00:12"}]}]
    if login:
        servers[0]["lab_access"] = {"ssh": {"user": "root", "key": str(key), "port": 2222}}
    return Environment.model_validate({"name": "shop", "networks": [{"name": "lan", "cidr": "10.90.0.0/24"}],
                                       "servers": servers})


def snapshot(web_agent: str, web_keys: list[str]) -> Snapshot:
    def copy(agent: str, keys: list[str]) -> ServerCopy:
        return ServerCopy(domain="d", state="running", method="backup", frozen=False, xml="x", agent=agent,
                          host_keys=keys)
    return Snapshot(id="s1", environment="shop", hypervisor="qemu:///system", taken_at="2026-11-21T06:00:00+00:00",
                    seconds=1, servers={"web": copy(web_agent, web_keys), "db": copy("exec", [ED])})


@pytest.mark.parametrize("agent, message", [
    ("none", "server web has no guest agent: labmgr cannot reach it in a lab"),
    ("no-exec", "server web has a guest agent with guest-exec disabled (treated as agentless)"),
])
def test_no_agent_and_no_login_is_refused_naming_both_fixes(tmp_path, agent, message) -> None:
    with pytest.raises(LabError) as caught:
        guestchannel.check_reachable(env(tmp_path, login=False), snapshot(agent, [ED]))
    assert message in str(caught.value)
    assert "servers[web].lab_access.ssh" in str(caught.value) and "qemu-guest-agent" in str(caught.value)


def test_a_login_without_known_host_keys_is_refused(tmp_path) -> None:
    guestchannel.check_reachable(env(tmp_path), snapshot("none", [ED]))
    with pytest.raises(LabError, match="knows no SSH host key of it"):
        guestchannel.check_reachable(env(tmp_path), snapshot("none", []))


def test_the_labs_known_hosts_name_each_server_by_ip_hostname_and_port(tmp_path, monkeypatch) -> None:
    record = LabRecord(name="lab1", environment="shop", hypervisor="qemu:///system", snapshot="s1", spec="x")
    monkeypatch.setattr(guestchannel, "known_hosts_path", lambda r: tmp_path / "known_hosts")
    path = guestchannel.write_known_hosts(record, env(tmp_path), snapshot("none", [ED, "ssh-rsa AAAAB3"]))
    assert path.read_text().splitlines() == [
        f"10.90.0.11,web01.shop.test,web01,[10.90.0.11]:2222 {ED}",
        "10.90.0.11,web01.shop.test,web01,[10.90.0.11]:2222 ssh-rsa AAAAB3",
        f"10.90.0.12,db01.shop.test,db01 {ED}"]


def test_login_for_keeps_what_the_channel_needs(tmp_path) -> None:
    web, db = env(tmp_path).servers
    assert guestchannel.login_for(web) == {"ip": "10.90.0.11", "port": 2222, "user": "root",
                                           "key": str(tmp_path / "lab_key")}
    assert guestchannel.login_for(db) == {}


def test_labmgr_ssh_checks_against_the_labs_known_hosts_only() -> None:
    argv = ssh_argv("ns", "10.90.0.11", "web01.shop.test", None, 22, [], [], known_hosts="/s/labs/l/known_hosts")
    assert argv == ["ip", "netns", "exec", "ns", "ssh", "-p", "22", "-o", "HostKeyAlias=web01.shop.test",
                    "-o", "UserKnownHostsFile=/s/labs/l/known_hosts", "-o", "GlobalKnownHostsFile=/dev/null",
                    "-o", "StrictHostKeyChecking=yes", "-o", "CheckHostIP=no", "10.90.0.11"]
    for option in ("StrictHostKeyChecking=no", "userknownhostsfile=/dev/null", "HostKeyAlias=x"):
        with pytest.raises(LabError, match="does not let that be changed"):
            ssh_argv("ns", "10.90.0.11", None, None, 22, [option], [], known_hosts="/k")


def test_host_keys_are_type_and_key_once_each() -> None:
    text = f"{ED} root@vm\n{ED} other comment\ngarbage\n  ssh-rsa AAAAB3Nza root@vm\n"
    assert _key_lines(text) == [ED, "ssh-rsa AAAAB3Nza"]


def test_a_definition_without_the_agent_channel_has_no_agent() -> None:
    xml = DomainXML("<domain type='qemu'><name>x</name><devices><channel type='pty'><target type='virtio' "
                    "name='org.example.other'/></channel></devices></domain>")
    assert agent_state(None, xml) == NONE


def test_lab_show_says_the_point_since_when_and_how() -> None:
    record = LabRecord(name="lab1", environment="shop", hypervisor="qemu:///system", snapshot="s1", spec="x",
                       created_at="2026-11-21T07:00:00+00:00")
    assert point_of(record) == {"at": None, "kind": "clean", "since": "2026-11-21T07:00:00+00:00",
                                "how": "clean clone of snapshot s1, no dumps restored", "dumps": {},
                                "skew_seconds": 0.0, "requested": None}
    record.point = {"at": "2026-11-21T03:30Z", "requested": "3 hours ago", "dumps": {"web/data": "2026-11-21T03:00Z"},
                    "skew_seconds": 60.0, "restored_at": "2026-11-21T07:05Z"}
    shown = point_of(record)
    assert shown["at"] == "2026-11-21T03:30Z" and shown["since"] == "2026-11-21T07:05Z"
    assert shown["dumps"] == {"web/data": "2026-11-21T03:00Z"} and shown["skew_seconds"] == 60.0
    assert shown["kind"] == "restored" and "'3 hours ago'" in shown["how"]


def test_a_lab_server_record_keeps_its_login() -> None:
    assert LabServer(domain="d", hostname="h").login == {}
