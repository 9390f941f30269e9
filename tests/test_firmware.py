"""Production machines as customers run them (issue 11), end to end on real guests.

Production, built by labmgr/demo/fwproduction.py from tests/images/firmware.yaml:
- db: UEFI (``<os firmware='efi'>``, q35, GRUB EFI on an ESP of its own GPT qcow2
  disk), MariaDB on a raw second disk that is a storage pool volume; a NIC on a
  libvirt network and one macvtap NIC (``type='direct'``) on a veth link;
- web: BIOS (SeaBIOS, GRUB in the MBR of a partitioned raw disk that is a loop
  device, ``<disk type='block'>``); a NIC on the libvirt network and one on a
  Linux bridge libvirt does not manage; shut off when captured;
- db's addresses from ifupdown, web's from NetworkManager keyfiles (its NICs left out of
  /etc/network/interfaces); both log the serial console to a host file.

One story, checked from outside labmgr (virsh, the guests, sha256 of
production's files): capture, lab up (an instant lab, resumed from the warm
template it makes), what the guests see (and who set their addresses), each
NIC's model and PCI address, every host path of the lab against production's,
a dump restored at two hours, probes, lab down. Apart: a server with a disk on the
network is refused by capture in one line, before anything is written.
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from labmgr import paths
from labmgr.demo import fwproduction as fw
from labmgr.dumps.hourly import collect
from labmgr.image import build_image, load_recipe
from labmgr.lab.teardown import lab_down
from labmgr.lab.up import lab_up
from labmgr.snapshot import capture, delete_snapshot
from labmgr.spec import load_environment
from labmgr.timeparse import format_point
from labmgr.xml.builder import parse, read_tag
from labmgr.xml.devices import host_paths

from helpers import labmgr, leftovers, sha256

pytestmark = pytest.mark.libvirt
TESTS = Path(__file__).parent
LAB = "lmm-fwl"
T0 = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)
DB = fw.FwServer("db", "db01.fw.test", "uefi", memory=640, data_disk_mib=256, nics=(
    fw.FwNic("lan", "10.78.0.21", "52:54:00:78:00:21", "network"),
    fw.FwNic("mgmt", "10.80.0.21", "52:54:00:80:00:21", "direct")))
WEB = fw.FwServer("web", "web01.fw.test", "bios", memory=384, root_kind="block", addresses="networkmanager",
                  nics=(
    fw.FwNic("lan", "10.78.0.22", "52:54:00:78:00:22", "network"),
    fw.FwNic("san", "10.79.0.22", "52:54:00:79:00:22", "bridge")))


def mariadb(agent, sql: str) -> str:
    return agent.run(["mariadb", "-N", "-B", "crm", "-e", sql]).strip()


def virsh(*args: str) -> str:
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def fwprod(hypervisor, tmp_path_factory):
    image = build_image(load_recipe(TESTS / "images" / "firmware.yaml"))
    production = fw.FirmwareProduction(prefix="lmm-fw", servers=[DB, WEB], networks={
        "lan": "10.78.0.0/24", "san": "10.79.0.0/24", "mgmt": "10.80.0.0/24"})
    try:
        fw.create(hypervisor, production, image)
        agent = hypervisor.domain(production.domain_name(DB)).agent(timeout=60)
        agent.run(["mariadb", "-e", "CREATE DATABASE crm; CREATE TABLE crm.contacts (id int PRIMARY KEY, hour int)"])
        spec = production.spec()
        spec["servers"][0]["dumps"] = [{"name": "crm", "kind": "mariadb", "database": "crm", "via": "agent"}]
        spec["dumps"] = {"store": str(tmp_path_factory.mktemp("store"))}
        path = tmp_path_factory.mktemp("spec") / "lmm-fw.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        yield production, path, agent
    finally:
        fw.remove(hypervisor, production)


def production_state(hypervisor, production) -> dict[str, str]:
    """What must not change: both definitions, db's NVRAM, both serial logs, web's disk (shut off)."""
    state = {f"xml {s.name}": hypervisor.domain(production.domain_name(s)).xml(inactive=True)
             for s in (DB, WEB)}
    for label, path in (("nvram db", Path(f"/var/lib/libvirt/qemu/nvram/{production.domain_name(DB)}_VARS.fd")),
                        ("log web", production.log_file(WEB)), ("disk web", production.root_file(WEB))):
        state[label] = sha256(path)
    return state


@pytest.mark.timeout(2400)      # two firmware guests booted twice (production, lab) under TCG
def test_firmware_production_end_to_end(hypervisor, fwprod, tmp_path) -> None:
    production, spec_path, agent = fwprod
    env = load_environment(spec_path)
    for hour in (1, 2):                                   # two hours of work, each collected
        mariadb(agent, f"INSERT INTO contacts VALUES ({hour}, {hour})")
        result = collect(env, taken_at=T0 + timedelta(hours=hour))
        assert not result.failed, result.failed
    hypervisor.domain(production.domain_name(WEB)).agent().run(["sync"])
    virsh("shutdown", production.domain_name(WEB))       # captured shut off: read from the block device
    _wait_shut_off(hypervisor, production.domain_name(WEB))
    before = production_state(hypervisor, production)

    snapshot = capture(env)
    assert snapshot.servers["db"].method == "backup" and snapshot.servers["web"].method == "copy"
    assert set(snapshot.servers["db"].os_files) == {"nvram"}       # libvirt chooses db's firmware
    try:
        # an instant lab: resumed from the snapshot's warm template, which this first lab up makes
        record = lab_up(env, spec_path, name=LAB)
        assert record.template and record.servers["db"].points == "saved"
        try:
            _guests_keep_their_identity(hypervisor, record)
            _nics_keep_model_and_address(hypervisor, production, record)
            _lab_paths_are_its_own(hypervisor, production, record)
            _restore_two_points(hypervisor, record)
            _probes_pass(tmp_path, spec_path)
        finally:
            lab_down(LAB, hypervisor_uri="qemu:///system")
    finally:
        delete_snapshot(env.name, snapshot.id)
    assert leftovers(hypervisor, LAB) == []
    # nor any domain of the environment's warm template (removed with its snapshot)
    tagged = [d.name for d in hypervisor.domains()
              if (tag := read_tag(d.lab_metadata())) and tag.environment == env.name]
    assert tagged == []
    assert production_state(hypervisor, production) == before


def _wait_shut_off(hypervisor, name: str, timeout: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout
    while hypervisor.domain(name).is_active():
        assert time.monotonic() < deadline, f"{name} did not shut down"
        time.sleep(1)


def _guests_keep_their_identity(hypervisor, record) -> None:
    for server in (DB, WEB):
        agent = hypervisor.domain(record.servers[server.name].domain).agent(timeout=60)
        assert agent.run(["hostname"]).strip() == server.hostname
        interfaces = agent.interfaces()
        seen = {nic["mac"]: nic["ipv4"] for nic in interfaces}
        for nic in server.nics:
            assert nic.ip in seen.get(nic.mac, []), (server.name, nic, seen)
        _address_owner_is_productions(agent, server, {nic["mac"]: nic["name"] for nic in interfaces})
        firmware = "efi" if agent.exec(["test", "-d", "/sys/firmware/efi"]).ok else "bios"
        assert firmware == ("efi" if server.boot.startswith("uefi") else "bios")
        # every NIC is on one of the lab's isolated networks, whatever production attached it to
        xml = parse(hypervisor.domain(record.servers[server.name].domain).xml(inactive=False))
        networks = {n.find("source").get("network") for n in xml.iter("interface")}
        assert networks <= {net.name for net in record.networks.values()}
        assert {n.get("type") for n in xml.iter("interface")} == {"network"}


def _address_owner_is_productions(agent, server, names: dict[str, str]) -> None:
    """NetworkManager holds web's addresses through its keyfile connections, and leaves db's to
    ifupdown (unmanaged), in the lab exactly as in production: asked of the guest's own nmcli."""
    for nic in server.nics:
        show = agent.run(["nmcli", "-t", "-f", "GENERAL.STATE,GENERAL.CONNECTION,IP4.ADDRESS", "device", "show",
                          names[nic.mac]])
        fields = dict(line.split(":", 1) for line in show.splitlines() if ":" in line)
        if server.addresses == "networkmanager":
            assert fields["GENERAL.STATE"].startswith("100 ") and fields["GENERAL.CONNECTION"] == nic.network, fields
            assert fields["IP4.ADDRESS[1]"].split("/")[0] == nic.ip, fields
        else:
            assert fields["GENERAL.STATE"].startswith("10 "), fields          # unmanaged: ifupdown's


def _nics_keep_model_and_address(hypervisor, production, record) -> None:
    """Each lab NIC has production's model and PCI address (production's definition against the lab's)."""
    for server in (DB, WEB):
        nics = []
        for name in (production.domain_name(server), record.servers[server.name].domain):
            xml = parse(hypervisor.domain(name).xml(inactive=True))
            nics.append({n.find("mac").get("address"): (n.find("model").get("type"),
                                                         dict(n.find("address").attrib))
                         for n in xml.iter("interface")})
        assert nics[0] == nics[1] and len(nics[0]) == 2, (server.name, nics)


def _lab_paths_are_its_own(hypervisor, production, record) -> None:
    """Every host path in the lab's definitions (as defined, and as running) is not one of production's."""
    production_paths: dict[str, str] = {}
    for server in (DB, WEB):
        domain = hypervisor.domain(production.domain_name(server))
        for xml in (domain.xml(inactive=True), domain.xml(inactive=False)):
            production_paths.update(host_paths(parse(xml)))
    assert str(production.log_file(WEB)) in production_paths            # the check sees them
    for server in (DB, WEB):
        domain = hypervisor.domain(record.servers[server.name].domain)
        for xml in (domain.xml(inactive=True), domain.xml(inactive=False)):
            # the firmware libvirt chooses (code, and the template of an NVRAM the lab already
            # has) is read-only, from the ovmf package, shared by every VM on the host
            shared = {p: w for p, w in host_paths(parse(xml)).items()
                      if p in production_paths and not p.startswith("/usr/share/OVMF/")}
            assert shared == {}, (server.name, shared)
        log = Path(record.storage) / server.name / "serial0.log"
        assert log.exists(), log                                        # the lab logs to its own file


def _restore_two_points(hypervisor, record) -> None:
    agent = hypervisor.domain(record.servers["db"].domain).agent(timeout=60)
    # resumed, MariaDB answers on its socket with the data captured (both hours' rows)
    assert mariadb(agent, "SELECT count(*) FROM contacts") == "2"
    for hour in (2, 1):
        result = labmgr("lab", "restore", LAB, "--at", format_point(T0 + timedelta(hours=hour, minutes=30)))
        assert result.returncode == 0, result.stderr
        assert mariadb(agent, "SELECT count(*), max(hour) FROM contacts").split() == [str(hour), str(hour)]
        assert "/var/lib/mysql" in agent.run(["findmnt", "-n", "-o", "TARGET", "LABEL=data"])


def _probes_pass(tmp_path: Path, spec_path: Path) -> None:
    probes = tmp_path / "probes.yaml"
    probes.write_text(yaml.safe_dump({"probes": [
        {"name": "contacts", "kind": "sql", "server": "db", "query": "SELECT count(*) FROM contacts",
         "expect": {"at_least": 1}},
        {"name": "web-boots-bios", "kind": "command", "server": "web",
         "command": "test -d /sys/firmware/efi || echo bios", "output_matches": "^bios$"},
        {"name": "web-reaches-db", "kind": "tcp", "server": "web", "target": "db01.fw.test", "port": 3306},
    ]}))
    result = labmgr("probe", LAB, "--probes", str(probes))
    assert result.returncode == 0, result.stdout + result.stderr



NETDISK_DOMAIN = "lmm-fw-netdisk"
def defined_only(name: str, disks: str, mac: str) -> str:
    """A domain these tests only define, never start (its bridge does not exist): no boot, seconds."""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
{disks}
    <interface type='bridge'>
      <mac address='{mac}'/>
      <source bridge='lmm-fw-none'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>"""


NETDISK_XML = defined_only(NETDISK_DOMAIN, f"""    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/{NETDISK_DOMAIN}-root.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='pool/nas-data'><host name='ceph1' port='6789'/></source>
      <target dev='vdb' bus='virtio'/>
    </disk>""", "52:54:00:81:00:31")


def test_a_network_disk_is_refused_at_capture_in_one_line(hypervisor, tmp_path) -> None:
    """A production server with a disk on the network (Ceph RBD): `snapshot capture` names the server
    and the disk in one line, exits non-zero and writes nothing. The domain is only defined: libvirt
    reaches no Ceph until it starts."""
    spec = tmp_path / "lmm-fwn.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "lmm-fwn", "hypervisor": "qemu:///system", "networks": [{"name": "lan", "cidr": "10.81.0.0/24"}],
        "servers": [{"name": "nas", "hostname": "nas01.fw.test", "domain": NETDISK_DOMAIN,
                     "nics": [{"network": "lan", "ip": "10.81.0.31", "mac": "52:54:00:81:00:31"}]}]}))
    domain = hypervisor.define_domain(NETDISK_XML)
    try:
        result = labmgr("snapshot", "capture", str(spec))
    finally:
        domain.undefine()
    assert result.returncode != 0
    error = [line for line in result.stderr.splitlines() if line.strip()]
    assert "server nas: disk vdb is on the network (rbd://ceph1/pool/nas-data)" in error[0], result.stderr
    assert "Traceback" not in result.stderr
    written = paths.snapshots_dir() / "lmm-fwn"
    assert not written.exists() or not any(written.iterdir())


VOLUME_POOL, VOLUME_DOMAIN = "lmm-fwv-pool", "lmm-fwv-nas"


def test_a_shut_off_volume_disk_is_read_through_its_pool(hypervisor, tmp_path) -> None:
    """A shut-off server whose disk is a raw volume of a storage pool (virt-manager's default): capture asks
    libvirt for the volume's path and reads it. The copy holds the volume's bytes; the volume and the
    definition are unchanged. The domain is only defined, so this costs no boot."""
    pool = tmp_path / "pool"
    pool.mkdir()
    virsh("pool-create-as", VOLUME_POOL, "dir", "--target", str(pool))
    domain = None
    try:
        virsh("vol-create-as", VOLUME_POOL, "data.raw", "8M", "--format", "raw")
        volume = pool / "data.raw"
        with volume.open("r+b") as raw:             # bytes of its own, away from the start
            raw.seek(3 << 20)
            raw.write(bytes(range(256)) * 4096)
        domain = hypervisor.define_domain(VOLUME_XML)
        definition, before = virsh("dumpxml", "--inactive", VOLUME_DOMAIN), sha256(volume)
        spec = tmp_path / "lmm-fwv.yaml"
        spec.write_text(yaml.safe_dump({
            "name": "lmm-fwv", "hypervisor": "qemu:///system", "networks": [{"name": "lan", "cidr": "10.81.0.0/24"}],
            "servers": [{"name": "nas", "hostname": "nas01.fw.test", "domain": VOLUME_DOMAIN,
                         "nics": [{"network": "lan", "ip": "10.81.0.32", "mac": "52:54:00:81:00:32"}]}]}))
        result = labmgr("snapshot", "capture", str(spec))
        assert result.returncode == 0, result.stderr
        copies = list((paths.snapshots_dir() / "lmm-fwv").glob("*/nas/*.qcow2"))
        assert len(copies) == 1, copies
        same = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(volume), str(copies[0])],
                              capture_output=True, text=True)
        assert same.returncode == 0, same.stdout + same.stderr
        assert (virsh("dumpxml", "--inactive", VOLUME_DOMAIN), sha256(volume)) == (definition, before)
    finally:
        if domain is not None:
            domain.undefine()
        for snapshot in (paths.snapshots_dir() / "lmm-fwv").glob("2*"):
            delete_snapshot("lmm-fwv", snapshot.name)
        virsh("pool-destroy", VOLUME_POOL)
    assert not list((paths.snapshots_dir() / "lmm-fwv").glob("2*"))


VOLUME_XML = defined_only(VOLUME_DOMAIN, f"""    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool='{VOLUME_POOL}' volume='data.raw'/>
      <target dev='vda' bus='virtio'/>
    </disk>""", "52:54:00:81:00:32")
