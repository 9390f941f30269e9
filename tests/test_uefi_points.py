"""Points in time of a firmware-booted (OVMF pflash) lab VM, on real libvirt.

libvirt 9 refuses internal snapshots of a VM with pflash firmware, so such a VM
keeps its clean and previous points as saved running states over read-only
disk layers (labmgr/lab/pointintime.py). A direct-kernel guest of the test base
image booted through OVMF proves it: a cold lab, restores switching hours, a
failed restore put back to the point before, and nothing left behind.
"""

from __future__ import annotations

import contextlib
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from labmgr.demo import production as prod
from labmgr.dumps.hourly import collect
from labmgr.dumps.store import store_root
from labmgr.errors import HypervisorError, LabmgrError
from labmgr.lab import records
from labmgr.lab.restore import lab_restore
from labmgr.lab.teardown import lab_down
from labmgr.lab.up import lab_up
from labmgr.snapshot import capture, delete_snapshot
from labmgr.spec import load_environment
from labmgr.timeparse import format_point
from labmgr.xml.builder import snapshot_xml

from helpers import leftovers

pytestmark = pytest.mark.libvirt
LAB = "lmi-fwlab"
T0 = datetime(2026, 11, 21, 6, 0, tzinfo=timezone.utc)
NOTES = "/var/lib/lmi-notes"
# hour 3's notes say "bad": its restore fails after unpacking, so the lab must go back
RESTORE = (f'mkdir -p {NOTES} && find {NOTES} -mindepth 1 -delete && tar -C {NOTES} -xpf "$LABMGR_DUMP" '
           f'&& ! grep -q bad {NOTES}/now')


@pytest.fixture(scope="module")
def uefi_lab(hypervisor, base_image, tmp_path_factory):
    environment = prod.Production(prefix="lmi-uefi", network="10.94.0.0/24", gateway="10.94.0.1", servers=[
        prod.ProdServer("fw", "fw01.lmi.test", "10.94.0.11", "52:54:00:94:00:11", memory=384, uefi=True)],
        boot_timeout=900)    # OVMF under TCG on a loaded 2-core host
    try:
        yield from _uefi_lab(hypervisor, base_image, tmp_path_factory, environment)
    finally:
        if records.lab_dir(LAB).exists() or leftovers(hypervisor, LAB):
            lab_down(LAB, hypervisor_uri="qemu:///system")
        prod.remove(hypervisor, environment)


def _uefi_lab(hypervisor, base_image, tmp_path_factory, environment):
    prod.create(hypervisor, environment, base_image)
    spec = environment.spec()
    spec["servers"][0]["dumps"] = [{"name": "notes", "kind": "files", "path": NOTES, "via": "agent",
                                    "restore_command": RESTORE}]
    spec["dumps"] = {"store": str(tmp_path_factory.mktemp("store"))}
    path = tmp_path_factory.mktemp("spec") / "lmi-uefi.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = load_environment(path)
    agent = hypervisor.domain(environment.domain_name(environment.servers[0])).agent(timeout=60)
    taken = None
    try:
        for hour, text in ((1, "hour-1"), (2, "hour-2"), (3, "bad")):
            agent.run(["sh", "-c", f"mkdir -p {NOTES} && echo {text} > {NOTES}/now"])
            assert not collect(env, taken_at=T0 + timedelta(hours=hour)).failed
        taken = capture(env)
        record = lab_up(env, path, name=LAB, snapshot_id=taken.id, cold=True)
        yield env, record
        lab_down(LAB)           # 'lab down' leaves nothing: checked here, after every test whatever their order
        assert leftovers(hypervisor, LAB) == []
    finally:
        if records.lab_dir(LAB).exists() or leftovers(hypervisor, LAB):
            lab_down(LAB, hypervisor_uri="qemu:///system")
        if taken:
            with contextlib.suppress(LabmgrError):
                delete_snapshot(env.name, taken.id)
        subprocess.run(["rm", "-rf", str(store_root(env))])


def inside(hypervisor, record):
    return hypervisor.domain(record.servers["fw"].domain).agent(timeout=30)


def notes(hypervisor, record) -> str:
    return inside(hypervisor, record).run(["cat", f"{NOTES}/now"]).strip()


def test_a_pflash_vm_keeps_its_points_as_saved_states(uefi_lab, hypervisor):
    env, record = uefi_lab
    domain = hypervisor.domain(record.servers["fw"].domain)
    assert "<loader readonly='yes' type='pflash'>" in domain.xml()
    assert record.servers["fw"].points == "saved" and set(record.servers["fw"].saved) == {"labmgr-clean"}
    # why: libvirt will not take an internal snapshot of it
    with pytest.raises(HypervisorError):
        domain.create_snapshot(snapshot_xml("lmi-probe", "must be refused"))
    assert domain.snapshot_names() == []


def test_switching_hours_and_a_failed_restore_on_uefi(uefi_lab, hypervisor):
    env, record = uefi_lab
    inside(hypervisor, record).run(["sh", "-c", "echo dirty > /root/marker"])
    lab_restore(LAB, format_point(T0 + timedelta(hours=1)))
    assert notes(hypervisor, record) == "hour-1"
    assert inside(hypervisor, record).exec(["test", "-e", "/root/marker"]).exit_code != 0
    lab_restore(LAB, format_point(T0 + timedelta(hours=2)))
    assert notes(hypervisor, record) == "hour-2"
    # the point before a failed restore comes back exactly: hour 2 and a file written since
    inside(hypervisor, record).run(["sh", "-c", "echo kept > /root/since"])
    with pytest.raises(LabmgrError):
        lab_restore(LAB, format_point(T0 + timedelta(hours=3)))
    assert notes(hypervisor, record) == "hour-2"
    assert inside(hypervisor, record).run(["cat", "/root/since"]).strip() == "kept"
    assert records.load(LAB).point["at"] == format_point(T0 + timedelta(hours=2))
    # the firmware's NVRAM is the lab's own copy, never production's
    nvram = records.load(LAB).servers["fw"].nvram
    assert nvram.startswith(str(records.lab_dir(LAB))) and "lmi-uefi" not in nvram
    # and back to clean still works after going back to the previous point
    lab_restore(LAB, format_point(T0 + timedelta(hours=1)))
    assert notes(hypervisor, record) == "hour-1"
    assert inside(hypervisor, record).exec(["test", "-e", "/root/since"]).exit_code != 0
