"""A shut-off production server is copied plainly and left untouched; bad input gets one line."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from labmgr.demo import production as prod
from labmgr.lab import records
from labmgr.snapshot import list_snapshots

from helpers import labmgr, leftovers, libvirt_events, one_line_error, sha256

pytestmark = pytest.mark.libvirt


@pytest.fixture(scope="module")
def cold(hypervisor, base_image, tmp_path_factory):
    """A production server that is defined but shut off (never started)."""
    environment = prod.Production(prefix="lmt-cold", network="10.78.0.0/24", gateway="10.78.0.1", servers=[
        prod.ProdServer("files", "files01.shop.test", "10.78.0.21", "52:54:00:78:00:21", data_disk_mib=16)])
    prod.remove(hypervisor, environment)
    environment.directory.mkdir(parents=True)
    server = environment.servers[0]
    disks = environment.disk_paths(server)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base_image.disk),
                    str(disks[0])], check=True)
    prod._make_data_disk(disks[1], server.data_disk_mib)
    hypervisor.define_and_start_network(prod.network_xml(environment.network_name, environment.bridge, None))
    hypervisor.define_domain(prod.guest_domain_xml(
        virt_type="qemu", name=environment.domain_name(server), memory=256, vcpus=1,
        kernel=base_image.kernel, initrd=base_image.initrd,
        disks=[{"path": p, "target": f"vd{c}"} for p, c in zip(disks, "ab")],
        nics=[{"mac": server.mac, "network": environment.network_name}]))
    spec = environment.write_spec(tmp_path_factory.mktemp("cold") / "cold.yaml")
    yield environment, spec
    prod.remove(hypervisor, environment)
    shutil.rmtree(list_snapshots_dir("lmt-cold"), ignore_errors=True)


def list_snapshots_dir(environment: str):
    from labmgr.snapshot.store import environment_dir
    return environment_dir(environment)


def test_a_shut_off_server_is_copied_and_left_untouched(hypervisor, cold) -> None:
    environment, spec = cold
    server = environment.servers[0]
    disks = environment.disk_paths(server)
    xml = hypervisor.domain(environment.domain_name(server)).xml()
    hashes = [sha256(d) for d in disks]
    result = labmgr("snapshot", "capture", str(spec))
    assert result.returncode == 0, result.stderr
    snapshot = list_snapshots("lmt-cold")[-1]
    copy = snapshot.servers["files"]
    assert copy.method == "copy" and copy.state == "shut off" and not copy.frozen
    assert set(copy.os_files) == {"kernel", "initrd"}
    assert [sha256(d) for d in disks] == hashes
    assert hypervisor.domain(environment.domain_name(server)).xml() == xml
    assert not hypervisor.domain(environment.domain_name(server)).is_active()


def test_missing_snapshot_image_is_refused_before_anything_is_made(hypervisor, cold) -> None:
    environment, spec = cold
    if not list_snapshots("lmt-cold"):
        assert labmgr("snapshot", "capture", str(spec)).returncode == 0
    snapshot = list_snapshots("lmt-cold")[-1]
    image = snapshot.file(snapshot.servers["files"].disks[0].image)
    image.unlink()
    with libvirt_events() as events:
        line = one_line_error(labmgr("lab", "up", str(spec), "--name", "lmt-missing"))
    assert "is missing" in line and str(image) in line
    # nothing was made, not even made and removed again: libvirt reported no object of the lab
    assert [event for event in events if "lmt-missing" in event] == []
    assert leftovers(hypervisor, "lmt-missing") == []


def bad_spec(tmp_path, text: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


GOOD = {"name": "lmt-bad", "networks": [{"name": "lan", "cidr": "10.79.0.0/24"}],
        "servers": [{"name": "db", "hostname": "db01", "domain": "lmt-bad-db",
                     "nics": [{"network": "lan", "ip": "10.79.0.11", "mac": "52:54:00:79:00:11"}]},
                    {"name": "app", "hostname": "app01", "domain": "lmt-bad-app",
                     "nics": [{"network": "lan", "ip": "10.79.0.12", "mac": "52:54:00:79:00:12"}]}]}


def test_broken_yaml(tmp_path) -> None:
    line = one_line_error(labmgr("snapshot", "capture", str(bad_spec(tmp_path, "name: [x\n"))))
    assert "bad.yaml:" in line and "invalid YAML" in line


def test_unknown_key(tmp_path) -> None:
    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["servers"][1]["colour"] = "blue"
    line = one_line_error(labmgr("lab", "up", str(bad_spec(tmp_path, yaml.safe_dump(spec, sort_keys=False)))))
    assert "unknown key 'colour'" in line and "servers[1].colour" in line


def test_duplicate_mac(tmp_path) -> None:
    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["servers"][1]["nics"][0]["mac"] = "52:54:00:79:00:11"
    line = one_line_error(labmgr("snapshot", "capture", str(bad_spec(tmp_path, yaml.safe_dump(spec)))))
    assert "duplicate MAC 52:54:00:79:00:11" in line and "bad.yaml:" in line


def test_missing_production_domain(tmp_path) -> None:
    line = one_line_error(labmgr("snapshot", "capture", str(bad_spec(tmp_path, yaml.safe_dump(GOOD)))))
    assert "lmt-bad-db" in line and "not found" in line.lower()


def test_libvirt_not_reachable(tmp_path) -> None:
    spec = dict(GOOD, hypervisor="qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    line = one_line_error(labmgr("snapshot", "capture", str(bad_spec(tmp_path, yaml.safe_dump(spec)))))
    assert "not reachable" in line and "libvirtd" in line


def test_no_snapshot_yet(tmp_path) -> None:
    line = one_line_error(labmgr("lab", "up", str(bad_spec(tmp_path, yaml.safe_dump(GOOD)))))
    assert "has no snapshot" in line and "snapshot capture" in line


def test_unknown_lab() -> None:
    line = one_line_error(labmgr("lab", "down", "lmt-no-such-lab"))
    assert "no lab named 'lmt-no-such-lab'" in line


def test_bad_accel_variable(tmp_path, cold) -> None:
    _, spec = cold
    line = one_line_error(labmgr("lab", "up", str(spec), env={"LABMGR_ACCEL": "warp"}))
    assert "LABMGR_ACCEL" in line


def test_doctor_names_the_fix(tmp_path) -> None:
    def status(output: str, check: str) -> str:
        """The status column of ``check``'s line (its name is printed whatever the result)."""
        return next(line.split()[0] for line in output.splitlines() if line[5:].startswith(f"{check}:"))

    ok = labmgr("doctor")
    assert ok.returncode == 0, ok.stdout
    assert (status(ok.stdout, "libvirt"), status(ok.stdout, "qemu-img")) == ("ok", "ok")
    assert "qemu:///system answers (libvirt " in ok.stdout
    broken = labmgr("doctor", "--hypervisor", "qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    assert broken.returncode == 1 and status(broken.stdout, "libvirt") == "FAIL"
    assert status(broken.stdout, "qemu-img") == "ok"             # only what is broken fails
    fix = broken.stdout.split("FAIL libvirt:", 1)[1].splitlines()[1]
    assert fix.strip().startswith("fix:") and "libvirtd -d" in fix


def test_a_snapshot_in_use_is_not_deleted(hypervisor, cold) -> None:
    environment, spec = cold
    assert labmgr("snapshot", "capture", str(spec)).returncode == 0
    snapshot = list_snapshots("lmt-cold")[-1]
    # a lab record cloned from it (what lab up writes first)
    records.reserve("lmt-inuse", "lmt-cold", hypervisor="qemu:///system", snapshot=snapshot.id, spec=str(spec))
    try:
        line = one_line_error(labmgr("snapshot", "delete", str(spec), snapshot.id))
        assert "in use by lab lmt-inuse" in line
    finally:
        assert labmgr("lab", "down", "lmt-inuse").returncode == 0
    removed = labmgr("snapshot", "delete", str(spec), snapshot.id)
    assert removed.returncode == 0 and not snapshot.path.exists()
