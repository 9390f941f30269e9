"""The lab's DHCP and DNS configuration (dnsmasq in the door), without a hypervisor."""

from __future__ import annotations

from pathlib import PurePosixPath

from labmgr.access.dnsdhcp import dnsmasq_conf, host_records, served_networks
from labmgr.access.door import Door, door_address, legs
from labmgr.lab.template import template_key
from labmgr.spec.model import Environment

SPEC = {
    "name": "shop",
    "networks": [{"name": "lan", "cidr": "10.90.0.0/24", "gateway": "10.90.0.1", "dhcp": True, "dns": "10.90.0.254"},
                 {"name": "dmz", "cidr": "10.91.0.0/24"}],
    "servers": [
        {"name": "db", "hostname": "db01.shop.test", "domain": "prod-db",
         "nics": [{"network": "lan", "ip": "10.90.0.11", "mac": "52:54:00:90:00:11"}]},
        {"name": "web", "hostname": "web01", "domain": "prod-web",
         "nics": [{"network": "lan", "ip": "10.90.0.12", "mac": "52:54:00:90:00:12"},
                  {"network": "dmz", "ip": "10.91.0.6", "mac": "52:54:00:91:00:12"}]},
    ],
}
ENV = Environment.model_validate(SPEC)


def door() -> Door:
    return Door("lab1", "ns", {n.name: str(door_address(ENV, n)) for n in ENV.networks})


def test_the_door_never_takes_the_resolver_address_as_its_own() -> None:
    assert str(door_address(ENV, ENV.network("lan"))) == "10.90.0.253/24"      # .254 is the resolver


def test_reservations_only_no_pool_no_upstream_only_the_served_legs() -> None:
    conf = dnsmasq_conf(ENV, door(), PurePosixPath("/labs/lab1/dnsdhcp")).splitlines()
    assert [n.name for n in served_networks(ENV, {"lan": 1, "dmz": 2})] == ["lan"]
    assert "no-resolv" in conf and "no-hosts" in conf and "local=/#/" in conf
    assert not any(line.startswith("server=") for line in conf)               # nothing is ever forwarded
    assert [line for line in conf if line.startswith("interface=")] == [f"interface={legs(door())['lan']}"]
    assert [line for line in conf if line.startswith("dhcp-range")] == [
        "dhcp-range=set:net-lan,10.90.0.0,static,255.255.255.0,infinite"]       # static: no pool
    assert [line for line in conf if line.startswith("dhcp-host")] == [
        "dhcp-host=52:54:00:90:00:11,10.90.0.11,infinite", "dhcp-host=52:54:00:90:00:12,10.90.0.12,infinite"]
    assert "dhcp-ignore=tag:!known" in conf
    assert "dhcp-option=tag:net-lan,option:router,10.90.0.1" in conf
    assert "dhcp-option=tag:net-lan,option:dns-server,10.90.0.254" in conf
    assert "port=0" not in conf


def test_dhcp_without_dns_serves_no_dns_and_offers_no_router_of_its_own() -> None:
    env = Environment.model_validate({**SPEC, "networks": [
        {"name": "lan", "cidr": "10.90.0.0/24", "dhcp": True}, {"name": "dmz", "cidr": "10.91.0.0/24"}]})
    conf = dnsmasq_conf(env, Door("lab1", "ns", {"lan": "10.90.0.254/24"}), PurePosixPath("/x")).splitlines()
    assert "port=0" in conf
    assert "dhcp-option=tag:net-lan,option:router" in conf          # empty: none sent
    assert "dhcp-option=tag:net-lan,option:dns-server" in conf


def test_the_names_are_the_environments_only() -> None:
    assert host_records(ENV) == ["host-record=db01.shop.test,db01,10.90.0.11", "host-record=web01,10.90.0.12",
                                 "host-record=web01,10.91.0.6"]
    conf = dnsmasq_conf(ENV, door(), PurePosixPath("/x")).splitlines()
    assert [line for line in conf if line.startswith(("host-record", "addn-hosts", "address="))] == host_records(ENV)


def test_a_template_saved_without_the_labs_dhcp_is_another_template() -> None:
    class Hv:
        uri = "qemu:///system"

        def qemu_version(self) -> str:
            return "8.0"
    snapshot = type("S", (), {"id": "s1"})()
    plain = Environment.model_validate({**SPEC, "networks": [{"name": "lan", "cidr": "10.90.0.0/24"},
                                                             {"name": "dmz", "cidr": "10.91.0.0/24"}]})
    assert template_key(ENV, snapshot, Hv(), "qemu") != template_key(plain, snapshot, Hv(), "qemu")
