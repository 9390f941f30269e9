"""Devices that reach outside a VM, decided one by one (issue 11 item 5, issue 12 item 9).

Pure XML: production's definition in tests/data/production-devices.xml has a
device of every kind; the lab's must reach nothing of production's or the host's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from labmgr.errors import LabError
from labmgr.lab.clone import CloneInputs, derive_lab_domain
from labmgr.spec.model import Nic, Server
from labmgr.xml.devices import host_paths

PRODUCTION = (Path(__file__).parent / "data" / "production-devices.xml").read_text()
SERVER = Server(name="fw", hostname="fw01.shop.example", domain="shop-fw01",
                nics=[Nic(network="lan", ip="10.20.0.21", mac="52:54:00:aa:00:21")])
LAB_DIR = Path("/var/lib/labmgr/labs/shop-1/fw")


def inputs(**changes) -> CloneInputs:
    values = dict(lab="shop-1", environment="shop", snapshot="S1", server=SERVER, domain_name="shop-1-fw",
                  virt_type="qemu", overlays={t: LAB_DIR / f"{t}.qcow2" for t in ("vda", "vdb", "vdc")},
                  os_files={"nvram": LAB_DIR / "nvram"}, networks={"lan": "shop-1-lan"}, directory=LAB_DIR)
    values.update(changes)
    return CloneInputs(**values)


@pytest.fixture(scope="module")
def lab() -> etree._Element:
    return etree.fromstring(derive_lab_domain(PRODUCTION, inputs()).encode())


def test_no_host_path_of_production_is_left_in_the_lab(lab) -> None:
    production = host_paths(etree.fromstring(PRODUCTION.encode()))
    assert "/var/log/libvirt/qemu/shop-fw01-serial0.log" in production     # the check sees what it must
    assert "/var/lib/libvirt/qemu/nvram/shop-fw01_VARS.fd" in production
    left = {path: where for path, where in host_paths(lab).items() if path in production}
    assert left == {}
    # every path the lab names is its own, under its directory
    assert all(path.startswith(f"{LAB_DIR}/") for path in host_paths(lab)), host_paths(lab)


def test_serial_and_console_logs_become_one_lab_file(lab) -> None:
    logs = {node.getparent().tag + node.getparent().find("target").get("port", ""): node.get("file")
            for node in lab.iter("log")}
    # production's logged port keeps one file for port and console; the port that logged nothing gets its own
    assert logs == {"serial0": f"{LAB_DIR}/serial0.log", "console0": f"{LAB_DIR}/serial0.log",
                    "serial1": f"{LAB_DIR}/serial1.log"}
    second = lab.findall("devices/serial")[1]
    assert second.get("type") == "pty" and second.find("source") is None


def test_channels_to_the_network_are_dropped_the_agent_kept(lab) -> None:
    channels = lab.findall("devices/channel")
    assert [(c.get("type"), c.find("target").get("name")) for c in channels] == [
        ("unix", "org.qemu.guest_agent.0")]
    assert channels[0].find("source") is None          # libvirt chooses a fresh socket


def test_egd_rng_becomes_builtin_keeping_the_device(lab) -> None:
    rngs = lab.findall("devices/rng")
    assert [r.find("backend").get("model") for r in rngs] == ["builtin", "random"]
    assert rngs[0].find("backend").find("source") is None
    assert rngs[0].find("address").get("bus") == "0x05"


def test_tpm_passthrough_and_shared_folders_are_removed(lab) -> None:
    assert lab.find("devices/tpm") is None
    assert lab.find("devices/filesystem") is None


def test_emulated_tpm_is_kept() -> None:
    xml = PRODUCTION.replace('<backend type="passthrough"><device path="/dev/tpm0"/></backend>',
                             '<backend type="emulator" version="2.0"/>')
    lab = etree.fromstring(derive_lab_domain(xml, inputs()).encode())
    assert lab.find("devices/tpm/backend").get("type") == "emulator"


def test_disk_flags(lab) -> None:
    disks = {d.find("target").get("dev"): d for d in lab.iter("disk")}
    assert disks["vda"].find("shareable") is None          # the overlay is the lab VM's alone
    assert disks["vdb"].find("transient") is None          # the clean point already discards changes
    assert disks["vdc"].find("readonly") is not None
    assert all(d.get("type") == "file" for d in disks.values())


def test_uefi_autoselected_firmware_gets_the_labs_nvram(lab) -> None:
    assert lab.find("os").get("firmware") == "efi"
    nvram = lab.find("os/nvram")
    assert nvram.text == f"{LAB_DIR}/nvram" and nvram.get("template") is None


def test_nic_keeps_model_and_address_but_not_a_rom_file(lab) -> None:
    nic = lab.find("devices/interface")
    assert nic.get("type") == "network" and nic.find("source").get("network") == "shop-1-lan"
    assert nic.find("model").get("type") == "virtio" and nic.find("address").get("bus") == "0x01"
    assert nic.find("rom") is None or nic.find("rom").get("file") is None


def test_raw_qemu_arguments_are_refused_in_one_line() -> None:
    xml = PRODUCTION.replace("</devices>", "</devices><qemu:commandline>"
                             "<qemu:arg value='-netdev'/><qemu:arg value='user,id=leak'/></qemu:commandline>")
    with pytest.raises(LabError) as caught:
        derive_lab_domain(xml, inputs())
    assert "server fw" in str(caught.value) and "qemu:commandline" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_network_disk_is_refused_naming_server_and_disk() -> None:
    xml = PRODUCTION.replace('''<disk type="file" device="disk">
      <driver name="qemu" type="qcow2"/>
      <source file="/var/lib/libvirt/images/fw01-ref.qcow2"/>''', '''<disk type="network" device="disk">
      <driver name="qemu" type="raw"/>
      <source protocol="rbd" name="pool/fw01-ref"><host name="ceph1" port="6789"/></source>''')
    with pytest.raises(LabError, match=r"server fw: disk vdc is on the network \(rbd://ceph1/pool/fw01-ref\)"):
        derive_lab_domain(xml, inputs())


def test_a_path_the_clone_forgot_is_refused() -> None:
    """The last check catches a device no rule knows about (here: an audio file back-end)."""
    xml = PRODUCTION.replace("</devices>", '<audio id="1" type="file" path="/var/log/shop-fw01.wav"/></devices>')
    with pytest.raises(LabError, match="production's /var/log/shop-fw01.wav"):
        derive_lab_domain(xml, inputs())


def test_the_lab_definition_passes_virt_xml_validate(tmp_path: Path) -> None:
    from test_clone import validate

    validate(tmp_path, "domain.xml", derive_lab_domain(PRODUCTION, inputs()), "domain")
