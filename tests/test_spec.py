"""The environment spec: valid files load; every error names file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from labmgr.errors import SpecError
from labmgr.spec import load_environment

GOOD = """\
name: shop
hypervisor: qemu:///system
accel: tcg
networks:
  - name: lan
    cidr: 10.20.0.0/24
    gateway: 10.20.0.1
  - name: dmz
    cidr: 10.30.0.0/24
servers:
  - name: db
    hostname: db01.shop.example
    domain: shop-db01
    memory: 1024
    vcpus: 2
    nics:
      - {network: lan, ip: 10.20.0.11, mac: "52:54:00:AA:00:11"}
  - name: app
    hostname: app01.shop.example
    domain: shop-app01
    nics:
      - {network: lan, ip: 10.20.0.12, mac: "52:54:00:aa:00:12"}
      - {network: dmz, ip: 10.30.0.12, mac: "52:54:00:aa:00:11"}
boot_order: [db]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "env.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(SpecError) as caught:
        load_environment(write(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_valid_spec_loads(tmp_path: Path) -> None:
    env = load_environment(write(tmp_path, GOOD))
    assert env.name == "shop"
    assert env.server("db").nics[0].mac == "52:54:00:aa:00:11"   # normalised to lower case
    assert [s.name for s in env.servers_in_boot_order()] == ["db", "app"]
    assert env.accel == "tcg" and env.server("db").memory == 1024


@pytest.mark.parametrize("change, where, words", [
    (("    cidr: 10.20.0.0/24\n", "    cidr: 10.20.0.0/24\n    colour: blue\n"), ":7:", "unknown key 'colour'"),
    (("  - {network: lan, ip: 10.20.0.12, mac: \"52:54:00:aa:00:12\"}",
      "  - {network: lan, ip: 10.20.0.12, mac: \"52:54:00:aa:00:11\"}"), ":22:", "duplicate MAC 52:54:00:aa:00:11"),
    (("ip: 10.20.0.12,", "ip: 10.20.0.11,"), ":22:", "duplicate IP 10.20.0.11"),
    (("{network: dmz,", "{network: wan,"), ":23:", "network 'wan' is not declared"),
    (("ip: 10.30.0.12", "ip: 10.99.0.12"), ":23:", "10.99.0.12 is outside dmz"),
    (("gateway: 10.20.0.1", "gateway: 10.21.0.1"), ":7:", "gateway 10.21.0.1 is outside"),
    (("gateway: 10.20.0.1\n", "gateway: 10.20.0.1\n    access: 10.20.0.1\n"), ":8:", "a door there would answer"),
    (("gateway: 10.20.0.1\n", "gateway: 10.20.0.1\n    access: 10.20.1.9\n"), ":8:", "10.20.1.9 is not a host"),
    (("gateway: 10.20.0.1\n", "gateway: 10.20.0.1\n    access: 10.20.0.11\n"), ":18:",
     "10.20.0.11 is the lab door's address (access) of lan"),
    (("gateway: 10.20.0.1\n", "gateway: 10.20.0.1\n    dns: 10.20.1.53\n"), ":8:", "10.20.1.53 is not a host"),
    (("gateway: 10.20.0.1\n", "gateway: 10.20.0.1\n    dns: 10.20.0.1\n"), ":8:", "never answers at production's"),
    (("gateway: 10.20.0.1\n", "gateway: 10.20.0.1\n    dns: 10.20.0.11\n"), ":18:",
     "10.20.0.11 is the resolver address (dns) of lan"),
    (("boot_order: [db]", "boot_order: [db, cache]"), ":24:", "unknown server 'cache'"),
    (("mac: \"52:54:00:AA:00:11\"", "mac: \"52:54:00:AA:00\""), ":17:", "not a MAC address"),
    (("    domain: shop-app01\n", ""), ":18:", "required key 'domain' is missing"),
    (("accel: tcg", "accel: fast"), ":3:", "accel"),
    (("  - name: dmz", "  - name: lan"), ":8:", "duplicate network name 'lan'"),
    (("cidr: 10.30.0.0/24", "cidr: 10.30.0.5/24"), ":9:", "not a valid IPv4 network"),
])
def test_each_mistake_is_named_with_its_line(tmp_path: Path, change, where, words) -> None:
    old, new = change
    assert old in GOOD
    message = error_of(tmp_path, GOOD.replace(old, new, 1))
    assert f"env.yaml{where}" in message, message
    assert words in message, message


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, "name: shop\nnetworks: [\n  - name: lan\n")
    assert "env.yaml:" in message and "invalid YAML" in message


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("accel: tcg\n", "accel: tcg\naccel: kvm\n"))
    assert "env.yaml:4:" in message and "duplicate key 'accel'" in message


@pytest.mark.parametrize("key", ["[accel, x]", "{accel: 1}"])
def test_a_key_that_is_a_list_or_mapping_is_refused_with_its_line(tmp_path: Path, key: str) -> None:
    message = error_of(tmp_path, GOOD.replace("accel: tcg\n", f"accel: tcg\n? {key}\n: kvm\n"))
    assert "env.yaml:4:" in message and "a key must be a plain word" in message


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_environment(tmp_path / "nope.yaml")
    assert "empty" in error_of(tmp_path, "")
