"""The door's addresses, target names, the ssh command line and console hints, without a hypervisor."""

from __future__ import annotations

import pytest

from labmgr import paths
from labmgr.access.console import graphical_consoles
from labmgr.access.door import door_address, namespace_name
from labmgr.access.login import find_target, forward
from labmgr.access.ssh import ssh_argv
from labmgr.errors import LabError, NotFoundError
from labmgr.spec.model import Environment

ENV = Environment.model_validate({
    "name": "shop",
    "networks": [{"name": "lan", "cidr": "10.90.0.0/24", "gateway": "10.90.0.254"},
                 {"name": "dmz", "cidr": "10.91.0.0/29", "access": "10.91.0.2"}],
    "servers": [
        {"name": "db", "hostname": "db01.shop.test", "domain": "prod-db",
         "nics": [{"network": "lan", "ip": "10.90.0.11", "mac": "52:54:00:90:00:11"}]},
        {"name": "web", "hostname": "web01.shop.test", "domain": "prod-web",
         "nics": [{"network": "lan", "ip": "10.90.0.253", "mac": "52:54:00:90:00:13"},
                  {"network": "dmz", "ip": "10.91.0.6", "mac": "52:54:00:91:00:13"}]},
    ],
})


def test_the_door_takes_the_highest_address_nobody_uses_or_the_specs() -> None:
    # .254 is the gateway and .253 a server: the door gets .252; in dmz the spec says .2
    assert str(door_address(ENV, ENV.network("lan"))) == "10.90.0.252/24"
    assert str(door_address(ENV, ENV.network("dmz"))) == "10.91.0.2/29"
    assert namespace_name("shop-1") == f"labmgr-door-{paths.owner_id()[:8]}-shop-1"


def test_a_full_subnet_has_no_door() -> None:
    env = Environment.model_validate({
        "name": "tiny", "networks": [{"name": "p2p", "cidr": "10.92.0.0/30"}],
        "servers": [{"name": f"s{i}", "hostname": f"s{i}.test", "domain": f"d{i}",
                     "nics": [{"network": "p2p", "ip": f"10.92.0.{i}", "mac": f"52:54:00:92:00:0{i}"}]}
                    for i in (1, 2)]})
    with pytest.raises(LabError, match="no free address for the lab door"):
        door_address(env, env.network("p2p"))


@pytest.mark.parametrize("text, server, ip, alias", [
    ("db", "db", "10.90.0.11", "db01.shop.test"),
    ("db01.shop.test", "db", "10.90.0.11", "db01.shop.test"),
    ("WEB01", "web", "10.90.0.253", "web01.shop.test"),
    ("10.91.0.6", "web", "10.91.0.6", None),          # an IP: the host key is checked under the IP
])
def test_servers_are_found_by_name_hostname_or_ip(text, server, ip, alias) -> None:
    target = find_target(ENV, text)
    assert (target.server.name, target.ip, target.alias) == (server, ip, alias)


def test_an_unknown_server_names_the_known_ones() -> None:
    with pytest.raises(NotFoundError) as caught:
        find_target(ENV, "mail01")
    assert str(caught.value) == ("'mail01' is not a server of environment shop "
                                 "(servers: db (db01.shop.test), web (web01.shop.test))")


def test_the_ssh_command_line() -> None:
    assert ssh_argv("labmgr-door-a", "10.90.0.11", "db01.shop.test", "root", 22, ["BatchMode=yes"],
                    ["psql", "-c", "select 1"]) == [
        "ip", "netns", "exec", "labmgr-door-a", "ssh", "-p", "22", "-o", "HostKeyAlias=db01.shop.test",
        "-o", "BatchMode=yes", "-l", "root", "10.90.0.11", "--", "psql -c 'select 1'"]
    assert ssh_argv("ns", "10.90.0.11", None, None, 2222, [], []) == [
        "ip", "netns", "exec", "ns", "ssh", "-p", "2222", "10.90.0.11"]


@pytest.mark.parametrize("target, listen, message", [
    ("app", "127.0.0.1:0", "'app' is not SERVER:PORT"),
    ("app:99999", "127.0.0.1:0", "'app:99999' is not SERVER:PORT"),
    ("app:80", "8080", "--listen '8080' is not ADDRESS:PORT"),
    ("app:80", "0.0.0.0:8080", "forwards listen on the loopback only"),
])
def test_forward_arguments_are_checked_first(target, listen, message) -> None:
    with pytest.raises(LabError, match=message):
        forward("any-lab", target, listen)


def test_graphical_consoles_say_how_to_reach_them() -> None:
    xml = ("<domain><devices><graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'/>"
           "<graphics type='spice' port='-1'/><graphics type='sdl'/></devices></domain>")
    assert graphical_consoles(xml, "qemu:///system") == ["vnc on 127.0.0.1:5901 of the hypervisor "
                                                         "(vnc://127.0.0.1:5901)"]
    assert graphical_consoles(xml, "qemu+ssh://admin@hv1.example.com/system") == [
        "vnc on 127.0.0.1:5901 of the hypervisor; reach it with: ssh -N -L 5901:127.0.0.1:5901 "
        "admin@hv1.example.com, then vnc://127.0.0.1:5901"]
