"""The fault suite (issue 12): labmgr killed (SIGKILL) at every stage it reports, and other
faults, on a real production and real labs. Everything is checked from outside labmgr: the
guest agent's own fsfreeze status, virsh, files on disk, the lab guest's data.

One production server (base image) with a files dump collected through the agent; two hours
of dumps; one lab reused for every restore fault. The stages to kill at are read from a normal
run's own progress lines, so a new stage is killed at without changing this file. The kill
is made deterministic by ``LABMGR_FAULT_KILL_AT`` (labmgr/progress.py). Each fault adds a row
to ``$LABMGR_STATE_DIR/reliability/faults.jsonl``; ``tests/render_reliability.py`` renders
docs/reliability.md from it.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from labmgr.demo import production as prod
from labmgr.dumps.hourly import collect
from labmgr.dumps.store import store_for
from labmgr.lab import records
from labmgr.lab.pointintime import CLEAN
from labmgr.snapshot import capture, delete_snapshot, list_snapshots
from labmgr.spec import load_environment
from labmgr.timeparse import format_point

from faults_checks import (DATA, ENV, KILLED, RESTORE_LAB, drill_plan, drop_templates, freeze_status, killed_at,
                           lab_data, log, labmgr_argv, no_stray_templates, nothing_left, previous_files, previous_taken,
                           production_intact, restart_libvirtd, said_point, stages_of, template_labs)
from helpers import backing_chain, labmgr, one_line_error, sha256

pytestmark = pytest.mark.libvirt
T0 = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
HOURS = {1: T0 + timedelta(hours=1), 2: T0 + timedelta(hours=2)}
KILL_LAB = "lmf-k"


# production and its checks -----------------------------------------------------------------
@pytest.fixture(scope="module")
def fprod(hypervisor, base_image, tmp_path_factory):
    environment = prod.Production(prefix=ENV, network="10.93.0.0/24", gateway="10.93.0.1", servers=[
        prod.ProdServer("db", "db01.faults.test", "10.93.0.11", "52:54:00:93:00:11", memory=384, data_disk_mib=8)])
    prod.create(hypervisor, environment, base_image)
    folder = tmp_path_factory.mktemp("faults")
    spec = environment.spec()
    spec["servers"][0]["dumps"] = [{"name": "data", "kind": "files", "path": DATA, "via": "agent"}]
    spec["dumps"] = {"store": str(folder / "store")}
    spec_path = folder / f"{ENV}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = load_environment(spec_path)
    domain = hypervisor.domain(environment.domain_name(environment.servers[0]))
    agent = domain.agent(timeout=60)
    for hour, moment in HOURS.items():
        agent.run(["sh", "-c", f"mkdir -p {DATA} && echo hour{hour} > {DATA}/hour"])
        assert not collect(env, taken_at=moment).failed
    capture(env)                    # the snapshot labs are cloned from
    disks = environment.disk_paths(environment.servers[0])
    baseline = {"xml": domain.xml(inactive=True), "data_disk": sha256(disks[1]), "chain": backing_chain(disks[0])}
    yield {"production": environment, "spec": spec_path, "env": env, "domain": domain, "agent": agent,
           "baseline": baseline, "disks": disks, "folder": folder}
    for record in records.all_records():
        if record.environment == ENV:
            labmgr("lab", "down", record.name)
    for snapshot in list_snapshots(ENV):
        delete_snapshot(ENV, snapshot.id)
    prod.remove(hypervisor, environment)


# snapshot capture ------------------------------------------------------------------------
@pytest.fixture
def own_snapshots(fprod):
    """The captures a test makes are removed after it, passed or failed: labs (and 'lab up' in any later
    test) keep using the module's first snapshot, whatever order the tests run in."""
    before = {snapshot.id for snapshot in list_snapshots(ENV)}
    yield
    for snapshot in list_snapshots(ENV):
        if snapshot.id not in before:
            delete_snapshot(ENV, snapshot.id)


def test_capture_killed_at_every_stage_leaves_production_thawed(hypervisor, fprod, own_snapshots, log) -> None:
    normal = labmgr("snapshot", "capture", str(fprod["spec"]))
    assert normal.returncode == 0, normal.stderr
    stages = stages_of(normal)
    assert any("frozen" in s for s in stages), stages
    count = len(list_snapshots(ENV))
    for stage in stages:
        started = time.monotonic()
        killed_at(stage, "snapshot", "capture", str(fprod["spec"]))
        # frozen at the kill: the watchdog thaws without anyone running labmgr
        deadline = time.monotonic() + 30
        while freeze_status(fprod["domain"].name) != "thawed" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert labmgr("snapshot", "list", str(fprod["spec"])).returncode == 0
        production_intact(fprod)
        nothing_left(hypervisor, fprod, [])
        assert len(list_snapshots(ENV)) == count
        log("SIGKILL", f"snapshot capture, at '{stage}'", "thawed (guest agent), XML, disk sha256, backing "
            "chain, no partial snapshot, journal empty", "pass", time.monotonic() - started)


def test_capture_killed_frozen_without_its_watchdog_is_thawed_by_the_next_command(fprod, own_snapshots, log) -> None:
    stage = next(s for s in stages_of(labmgr("snapshot", "capture", str(fprod["spec"]))) if "frozen" in s)
    started = time.monotonic()
    result = labmgr("snapshot", "capture", str(fprod["spec"]),
                    env={"LABMGR_FAULT_KILL_AT": stage, "LABMGR_FAULT_NO_WATCHDOG": "1"})
    assert result.returncode == KILLED
    assert freeze_status(fprod["domain"].name) == "frozen"       # the fault is real
    listed = labmgr("snapshot", "list", str(fprod["spec"]))
    assert listed.returncode == 0 and "thawed" in listed.stderr, listed.stderr
    production_intact(fprod)
    log("SIGKILL, no watchdog", f"snapshot capture, at '{stage}'", "frozen after the kill; thawed by "
        "'snapshot list' (guest agent)", "pass", time.monotonic() - started)


# dumps collect ---------------------------------------------------------------------------
def test_collect_killed_at_every_stage(hypervisor, fprod, log) -> None:
    normal = labmgr("dumps", "collect", str(fprod["spec"]))
    assert normal.returncode == 0, normal.stderr
    for stage in stages_of(normal):
        started = time.monotonic()
        killed_at(stage, "dumps", "collect", str(fprod["spec"]))
        assert labmgr("dumps", "list", str(fprod["spec"])).returncode == 0
        production_intact(fprod)
        nothing_left(hypervisor, fprod, [])
        log("SIGKILL", f"dumps collect, at '{stage}'", "no temp directory in production, no partial dump, "
            "catalog rows = files with their sha256", "pass", time.monotonic() - started)


def test_full_dump_store_is_one_line_and_nothing_half_written(fprod, tmp_path, log) -> None:
    started = time.monotonic()
    image, mount = tmp_path / "small.ext4", tmp_path / "store"
    subprocess.run(["truncate", "-s", "4M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-O", "^has_journal", str(image)], check=True)
    mount.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        fprod["agent"].run(["sh", "-c", "mkdir -p /var/lib/big && head -c 8000000 /dev/urandom > /var/lib/big/f"])
        spec = yaml.safe_load(fprod["spec"].read_text())
        spec["servers"][0]["dumps"] = [{"name": "big", "kind": "files", "path": "/var/lib/big", "via": "agent"}]
        spec["dumps"] = {"store": str(mount)}
        small = tmp_path / f"{ENV}.yaml"
        small.write_text(yaml.safe_dump(spec, sort_keys=False))
        result = labmgr("dumps", "collect", str(small))
        assert result.returncode != 0 and "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if "big" in line and "No space" in line]
        assert len(errors) == 1, result.stderr
        with store_for(load_environment(small)) as store:
            assert store.catalog.list() == []
        assert [p.name for p in mount.rglob("*") if p.is_file() and p.name != "catalog.sqlite"
                and not p.name.startswith("catalog.sqlite")] == []
        production_intact(fprod)
    finally:
        fprod["agent"].run(["rm", "-rf", "/var/lib/big"])
        subprocess.run(["umount", str(mount)], check=False)
    log("dump store full (4 MiB loop-mounted ext4)", "dumps collect of an 8 MB dump", "one error line, "
        "no catalog row, no file but the catalog", "pass", time.monotonic() - started)


# lab up ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def restore_lab(hypervisor, fprod):
    """A lab up through the command line (its stages are the ones to kill at), at hour 1. The snapshot's
    warm template is dropped first (a drill before may have made it), so its stages include the making."""
    drop_templates()
    normal = labmgr("lab", "up", str(fprod["spec"]), "--name", RESTORE_LAB)
    assert normal.returncode == 0, normal.stderr
    restored = labmgr("lab", "restore", RESTORE_LAB, "--at", HOURS[1].isoformat())
    assert restored.returncode == 0, restored.stderr
    yield {"up_stages": stages_of(normal), "restore_stages": stages_of(restored)}
    labmgr("lab", "down", RESTORE_LAB)


def test_lab_up_killed_at_every_stage_is_collected(hypervisor, fprod, restore_lab, log) -> None:
    """The first lab up of a snapshot makes its warm template (a cold boot, then saves), then resumes
    the lab from it: killed at each stage of the resume (template there), then of the template's
    making (template dropped first), 'lab gc' leaves neither the lab nor the template's lab or files.
    ``lab up --cold`` shares the template's stages but for its clean points."""
    stages = restore_lab["up_stages"]
    made = stages.index("save running states (template)") + 1
    for phase, to_kill, flags in (("instant", stages[made:], []), ("template", stages[:made], []),
                                  ("cold", ["clean points"], ["--cold"])):
        for stage in to_kill:
            started = time.monotonic()
            if phase == "template":
                drop_templates()
            killed_at(stage, "lab", "up", str(fprod["spec"]), "--name", KILL_LAB, *flags)
            gc = labmgr("lab", "gc")
            assert gc.returncode == 0, gc.stderr
            nothing_left(hypervisor, fprod, [KILL_LAB, *template_labs(hypervisor, fprod["env"])])
            no_stray_templates()
            production_intact(fprod)
            log("SIGKILL", f"lab up ({phase}), at '{stage}'", "'lab gc' leaves no domain, network, directory, "
                "door, overlay, template lab or half-made template; production intact", "pass",
                time.monotonic() - started)


# lab restore --------------------------------------------------------------------------
def settled_at(hypervisor, hour: int) -> None:
    """The lab says it is at ``hour`` and its guest holds that hour's data; only the clean point
    (an internal snapshot, or for a VM keeping saved states no previous point's files on disk)."""
    assert said_point() == format_point(HOURS[hour])
    record = records.load(RESTORE_LAB)
    assert record.state == "up"
    assert lab_data(hypervisor) == f"hour{hour}"
    domain = hypervisor.domain(record.servers["db"].domain)
    assert domain.is_active()
    if record.servers["db"].points == "saved":
        assert domain.snapshot_names() == [] and previous_files(hypervisor) == []
        assert list(record.servers["db"].saved) == [CLEAN]
    else:
        assert domain.snapshot_names() == [CLEAN]


SERVER_STAGES = ["db revert", "db media", "db restore"]


def test_restore_killed_at_every_stage_is_at_its_old_point_and_says_so(hypervisor, fprod, restore_lab, log) -> None:
    # the restore step is named after its point: 'restore 20' is it, whatever the point
    stages = [("restore 20" if s.startswith("restore 20") else s) for s in restore_lab["restore_stages"]]
    old = 1 if said_point() == format_point(HOURS[1]) else 2       # where the tests before left the lab
    for stage in stages + SERVER_STAGES:
        started = time.monotonic()
        killed_at(stage, "lab", "restore", RESTORE_LAB, "--at", HOURS[3 - old].isoformat())
        settled_at(hypervisor, old)             # 'lab show' (the next command) put it back
        nothing_left(hypervisor, fprod, [])
        production_intact(fprod)
        log("SIGKILL", f"lab restore, at '{stage}'", "next command: the lab says its old point and its "
            "guest has that point's data; no labmgr-previous, no staged media", "pass", time.monotonic() - started)


def test_restore_and_probe_or_restore_at_once_take_turns(hypervisor, fprod, restore_lab, tmp_path, log) -> None:
    started = time.monotonic()
    probes = tmp_path / "probes.yaml"
    probes.write_text(yaml.safe_dump({"probes": [
        {"name": "hour", "kind": "command", "server": "db", "command": f"cat {DATA}/hour"}]}))
    first = subprocess.Popen([*labmgr_argv(), "lab", "restore", RESTORE_LAB, "--at", HOURS[2].isoformat()],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while records.load(RESTORE_LAB).state != "restoring":
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.1)
    try:
        second = labmgr("lab", "restore", RESTORE_LAB, "--at", HOURS[1].isoformat())
        probe = labmgr("probe", RESTORE_LAB, "--probes", str(probes))
        for refused in (second, probe):
            assert any(word in one_line_error(refused) for word in ("busy", "restoring")), refused.stderr
    finally:
        assert first.wait(600) == 0, first.stderr.read()
    settled_at(hypervisor, 2)
    probed = labmgr("probe", RESTORE_LAB, "--probes", str(probes))
    assert probed.returncode == 0, probed.stderr
    log("two commands on one lab", "a restore and a probe, and a second restore, while a restore runs",
        "both refused in one line ('busy'); the first restore completes", "pass", time.monotonic() - started)


def test_agent_killed_mid_restore_leaves_the_old_point(hypervisor, fprod, restore_lab, log) -> None:
    started = time.monotonic()
    domain = hypervisor.domain(records.load(RESTORE_LAB).servers["db"].domain)
    restore = subprocess.Popen([*labmgr_argv(), "lab", "restore", RESTORE_LAB, "--at", HOURS[1].isoformat()],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # once the restore reverted the VM to clean (the agent answers again), kill the agent
    while not previous_taken(hypervisor, domain):
        assert restore.poll() is None
        time.sleep(0.1)
    time.sleep(5)
    subprocess.run(["virsh", "-c", "qemu:///system", "qemu-agent-command", domain.name, json.dumps(
        {"execute": "guest-exec", "arguments": {"path": "pkill", "arg": ["-KILL", "-x", "qemu-ga"]}})],
        capture_output=True)
    code = restore.wait(600)
    err = restore.stderr.read()
    assert "Traceback" not in err
    point = said_point()
    assert point in (format_point(HOURS[1]), format_point(HOURS[2]))
    hour = 1 if point == format_point(HOURS[1]) else 2
    settled_at(hypervisor, hour)
    log("guest agent killed (pkill -KILL qemu-ga in the lab guest)", "lab restore, after the revert to clean",
        f"exit {code}; lab at {'new' if hour == 1 else 'old'} point and says so; agent answers", "pass",
        time.monotonic() - started)


def test_a_failing_restore_reverts_and_says_its_old_point(hypervisor, fprod, restore_lab, log) -> None:
    """The in-process path: a restore command that fails in the guest; the lab is reverted (the
    revert step ran) and says its old point."""
    started = time.monotonic()
    old = said_point()
    target = 1 if old == format_point(HOURS[2]) else 2
    original = fprod["spec"].read_text()
    spec = yaml.safe_load(original)
    spec["servers"][0]["dumps"][0]["restore_command"] = "echo broken >&2; exit 3"
    fprod["spec"].write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        failed = labmgr("lab", "restore", RESTORE_LAB, "--at", HOURS[target].isoformat())
    finally:
        fprod["spec"].write_text(original)
    assert "broken" in one_line_error(failed)
    assert "revert to the previous point" in failed.stderr
    settled_at(hypervisor, 1 if old == format_point(HOURS[1]) else 2)
    nothing_left(hypervisor, fprod, [])
    log("the restore command fails in the guest (exit 3)", "lab restore", "one error line; the revert ran; "
        "the lab says its old point and its guest has that point's data", "pass", time.monotonic() - started)


# names -----------------------------------------------------------------------------------
def test_a_domain_named_like_the_next_lab_is_refused_and_untouched(hypervisor, fprod, tmp_path, log) -> None:
    from labmgr.xml.builder import guest_domain_xml

    started = time.monotonic()
    disk = tmp_path / "stranger.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    xml = guest_domain_xml(virt_type="qemu", name=f"{ENV}-1-db", memory=64, vcpus=1, kernel=fprod["disks"][0],
                           initrd=fprod["disks"][0], disks=[{"path": disk, "target": "vda"}], nics=[])
    stranger = hypervisor.define_domain(xml)
    try:
        before = stranger.xml()
        named = labmgr("lab", "up", str(fprod["spec"]), "--name", f"{ENV}-1")
        assert "already has" in one_line_error(named)
        # an automatic name skips it
        from labmgr.lab.labparts import clashes as _clashes

        auto = records.reserve(None, ENV, taken=lambda lab: bool(_clashes(hypervisor, fprod["env"], lab)),
                               hypervisor="qemu:///system", snapshot="x", spec=str(fprod["spec"]))
        auto.release()
        records.remove_dir(auto.name)
        assert auto.name == f"{ENV}-2"
        # a record naming the stranger (as a define that failed on the clash would leave) is torn down
        # without touching it
        record = records.LabRecord(name="lmf-z", environment=ENV, hypervisor="qemu:///system", snapshot="x",
                                   spec=str(fprod["spec"]))
        records.lab_dir("lmf-z").mkdir()
        record.servers["db"] = records.LabServer(domain=stranger.name, hostname="db01")
        record.save()
        down = labmgr("lab", "down", "lmf-z")
        assert down.returncode == 0, down.stderr
        gc = labmgr("lab", "gc")
        assert gc.returncode == 0, gc.stderr
        assert hypervisor.has_domain(stranger.name) and stranger.xml() == before
        assert not records.lab_dir("lmf-z").exists()
    finally:
        if hypervisor.has_domain(f"{ENV}-1-db"):
            hypervisor.domain(f"{ENV}-1-db").undefine()
    log("a domain labmgr did not make, named like the next lab's", "lab up --name; lab down and gc of a "
        "record naming it", "refused in one line; the domain untouched (XML compared)", "pass",
        time.monotonic() - started)


# labmgr run --------------------------------------------------------------------------------
def test_a_drill_that_fails_after_lab_up_still_finishes(hypervisor, fprod, tmp_path, log) -> None:
    started = time.monotonic()
    plan = drill_plan(fprod, tmp_path, "lmf-d", points=["2000-01-01T00:00:00Z"])   # no dump that early
    result = labmgr("run", str(plan))
    assert result.returncode == 1, result.stderr
    assert (tmp_path / "reports" / "lmf-d.md").is_file()           # the finish step ran: report
    nothing_left(hypervisor, fprod, ["lmf-d"])                      # and teardown
    log("a drill's restore fails (no dump at its point)", "labmgr run, after lab up", "exit 1, report "
        "written, lab removed", "pass", time.monotonic() - started)


def test_a_drill_killed_at_its_stages_is_collected_by_gc(hypervisor, fprod, tmp_path, log) -> None:
    """Killed in its lab up (resumed from the snapshot's template: made first if there is none), and
    once its lab is up: 'lab gc' leaves nothing (a drill's lab with no lease whose drill lock is free
    is garbage)."""
    plan = drill_plan(fprod, tmp_path, "lmf-e", points=[HOURS[1].isoformat()])
    for stage in ("clones (on the template)", "networks", "resume (no boot)", "check and stage dumps"):
        started = time.monotonic()
        killed_at(stage, "run", str(plan))
        if stage == "check and stage dumps":                       # up (and restoring), no lease, its drill dead
            assert records.load("lmf-e").state in ("up", "restoring")
        gc = labmgr("lab", "gc")
        assert gc.returncode == 0, gc.stderr
        nothing_left(hypervisor, fprod, ["lmf-e"])
        production_intact(fprod)
        log("SIGKILL", f"labmgr run, at '{stage}'", "'lab gc' leaves no domain, network, directory, door "
            "(a drill's lab: drill lock free, no lease)", "pass", time.monotonic() - started)


# libvirtd restarted -----------------------------------------------------------------------
def test_libvirtd_restarted_mid_restore(hypervisor, fprod, restore_lab, log) -> None:
    import libvirt

    started = time.monotonic()
    old = said_point()
    target = 1 if old == format_point(HOURS[2]) else 2
    domain = hypervisor.domain(records.load(RESTORE_LAB).servers["db"].domain)
    restore = subprocess.Popen([*labmgr_argv(), "lab", "restore", RESTORE_LAB, "--at", HOURS[target].isoformat()],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not previous_taken(hypervisor, domain):      # the lab is being changed
            assert restore.poll() is None, restore.stderr.read()
            time.sleep(0.1)
        outage = restart_libvirtd()
    finally:
        code = restore.wait(600)
        hypervisor.conn = libvirt.open("qemu:///system")        # the session's connection died with libvirtd
        fprod["domain"] = hypervisor.domain(fprod["domain"].name)
        fprod["agent"] = fprod["domain"].agent(timeout=60)
    err = restore.stderr.read()
    assert "Traceback" not in err
    point = said_point()                        # the next command: an interrupted restore is settled
    hour = 2 if point == format_point(HOURS[2]) else 1
    assert point == format_point(HOURS[hour])
    settled_at(hypervisor, hour)
    nothing_left(hypervisor, fprod, [])
    production_intact(fprod)
    log("libvirtd restarted (SIGTERM, then 'libvirtd -d')", "lab restore, once labmgr-previous is taken",
        f"restore exit {code}; lab at its {'old' if point == old else 'new'} point and says so (guest data); "
        f"outage {outage:.1f} s", "pass", time.monotonic() - started)
