"""What a lab clone changes in production's definition (pure XML, no libvirt needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lxml import etree

from labmgr import paths
from labmgr.errors import LabError
from labmgr.lab.clone import CloneInputs, derive_lab_domain
from labmgr.spec.model import Nic, Server
from labmgr.xml.builder import LabTag, network_xml, read_tag

PRODUCTION = (Path(__file__).parent / "data" / "production-domain.xml").read_text()
SERVER = Server(name="db", hostname="db01.shop.example", domain="shop-db01", memory=1024, vcpus=1, nics=[
    Nic(network="lan", ip="10.20.0.11", mac="52:54:00:aa:00:11"),
    Nic(network="san", ip="10.40.0.11", mac="52:54:00:bb:00:11"),
])


def inputs(**changes) -> CloneInputs:
    values = dict(lab="shop-1", environment="shop", snapshot="20261121T080000Z", server=SERVER,
                  domain_name="shop-1-db", virt_type="qemu",
                  overlays={"vda": Path("/labs/shop-1/db/vda.qcow2"), "vdb": Path("/labs/shop-1/db/vdb.qcow2")},
                  os_files={"loader": Path("/snapshots/shop/20261121T080000Z/db/loader"),
                            "nvram": Path("/labs/shop-1/db/nvram")},
                  directory=Path("/labs/shop-1/db"),
                  networks={"lan": "shop-1-lan", "san": "shop-1-san"})
    values.update(changes)
    return CloneInputs(**values)


@pytest.fixture(scope="module")
def clone() -> etree._Element:
    return etree.fromstring(derive_lab_domain(PRODUCTION, inputs()).encode())


def test_identity_is_new_and_tagged(clone) -> None:
    assert clone.findtext("name") == "shop-1-db"
    assert clone.find("uuid") is None and clone.find("genid") is None
    assert read_tag(clone) == LabTag("shop-1", "shop", "db", "20261121T080000Z", owner=paths.owner_id())
    assert "db01.shop.example" in clone.findtext("title")


def test_tcg_drops_host_cpu_and_kvm_features(clone) -> None:
    assert clone.get("type") == "qemu"
    assert clone.find("cpu") is None
    assert clone.find("features/kvm") is None and clone.find("features/acpi") is not None


def test_spec_overrides_memory_and_vcpus(clone) -> None:
    assert clone.find("memory").get("unit") == "MiB" and clone.findtext("memory") == "1024"
    assert clone.findtext("vcpu") == "1"


def test_disks_are_overlays_and_cdrom_is_empty(clone) -> None:
    disks = {d.find("target").get("dev"): d for d in clone.iter("disk")}
    for target in ("vda", "vdb"):
        disk = disks[target]
        assert disk.get("type") == "file"
        assert disk.find("source").get("file") == f"/labs/shop-1/db/{target}.qcow2"
        assert disk.find("driver").get("type") == "qcow2"
        assert disk.find("backingStore") is None
    # the guest keeps seeing its disk at the same PCI address
    assert disks["vda"].find("address").get("bus") == "0x04"
    assert disks["sda"].find("source") is None
    assert clone.findtext("os/nvram") == "/labs/shop-1/db/nvram"
    assert clone.findtext("os/loader") == "/snapshots/shop/20261121T080000Z/db/loader"   # the snapshot's copy


def test_nics_keep_mac_model_and_address_on_lab_networks(clone) -> None:
    nics = {n.find("mac").get("address"): n for n in clone.iter("interface")}
    assert set(nics) == {"52:54:00:aa:00:11", "52:54:00:bb:00:11"}
    lan, san = nics["52:54:00:aa:00:11"], nics["52:54:00:bb:00:11"]
    assert lan.get("type") == "network" and lan.find("source").get("network") == "shop-1-lan"
    assert lan.find("model").get("type") == "virtio" and lan.find("address").get("bus") == "0x01"
    assert lan.find("target") is None
    assert san.find("source").get("network") == "shop-1-san" and san.find("model").get("type") == "e1000e"


def test_nothing_reaches_the_host_or_production(clone) -> None:
    devices = clone.find("devices")
    for tag in ("hostdev", "filesystem"):
        assert devices.find(tag) is None
    graphics = devices.find("graphics")
    assert graphics.get("autoport") == "yes" and graphics.get("port") is None
    assert [l.get("address") for l in graphics.findall("listen")] == ["127.0.0.1"]
    serial = devices.find("serial")
    assert serial.get("type") == "pty" and serial.find("source") is None
    channel = devices.find("channel")
    assert channel.find("target").get("name") == "org.qemu.guest_agent.0" and channel.find("source") is None


def test_a_virtio_scsi_controller_is_added(clone) -> None:
    assert [c.get("model") for c in clone.iter("controller") if c.get("type") == "scsi"] == ["virtio-scsi"]


def test_kvm_keeps_the_cpu() -> None:
    clone = etree.fromstring(derive_lab_domain(PRODUCTION, inputs(virt_type="kvm")).encode())
    assert clone.get("type") == "kvm" and clone.find("cpu").get("mode") == "host-passthrough"


def test_nic_mismatch_is_refused() -> None:
    lone = SERVER.model_copy(update={"nics": SERVER.nics[:1]})
    with pytest.raises(LabError, match="MAC 52:54:00:bb:00:11 that the spec does not declare"):
        derive_lab_domain(PRODUCTION, inputs(server=lone))
    wrong = SERVER.model_copy(update={"nics": [SERVER.nics[0], Nic(network="san", ip="10.40.0.11",
                                                                  mac="52:54:00:cc:00:11")]})
    with pytest.raises(LabError, match="has no NIC with MAC 52:54:00:cc:00:11"):
        derive_lab_domain(PRODUCTION, inputs(server=wrong))


def validate(tmp_path: Path, name: str, xml: str, kind: str) -> None:
    path = tmp_path / name
    path.write_text(xml)
    result = subprocess.run(["virt-xml-validate", str(path), kind], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout


def test_what_we_write_passes_virt_xml_validate(tmp_path: Path) -> None:
    validate(tmp_path, "domain.xml", derive_lab_domain(PRODUCTION, inputs()), "domain")
    validate(tmp_path, "network.xml", network_xml("shop-1-lan", "lmb0123456789", LabTag("shop-1", "shop")),
             "network")


def test_the_tag_reads_back_as_libvirts_metadata_api_returns_it() -> None:
    # virDomainGetMetadata gives the element back without its namespace
    fragment = "<lab>\n  <name>shop-1</name>\n  <environment>shop</environment>\n  <server>db</server>\n</lab>"
    assert read_tag(fragment) == LabTag("shop-1", "shop", "db", None)
    assert read_tag("<other/>") is None
