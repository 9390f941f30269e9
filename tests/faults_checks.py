"""What the fault suite (test_faults.py) checks from outside labmgr, and how it injects faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from labmgr import journal, paths
from labmgr.dumps.store import store_for
from labmgr.lab import records

from helpers import backing_chain, labmgr, leftovers, sha256

ENV = "lmf-prod"
DATA = "/var/lib/app/data"
RESTORE_LAB = "lmf-r"
KILLED = -signal.SIGKILL


def freeze_status(domain: str) -> str:
    out = subprocess.run(["virsh", "-c", "qemu:///system", "qemu-agent-command", domain,
                          '{"execute":"guest-fsfreeze-status"}'], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["return"]


def production_intact(fp) -> None:
    """Thawed (the guest agent says so), definition and untouched disk the same, no overlay added,
    no dump temp directory left in the guest."""
    domain = fp["domain"]
    assert freeze_status(domain.name) == "thawed"
    assert domain.xml(inactive=True) == fp["baseline"]["xml"]
    assert sha256(fp["disks"][1]) == fp["baseline"]["data_disk"]
    assert backing_chain(fp["disks"][0]) == fp["baseline"]["chain"]
    assert fp["agent"].run(["sh", "-c", "ls -d /var/tmp/labmgr-dump-* 2>/dev/null; true"]).strip() == ""


def nothing_left(hypervisor, fp, labs: list[str]) -> None:
    """No domains, networks, directories, doors of ``labs``; no partial snapshot, partial dump,
    staged media or plaintext, no unfinished journal entry; a consistent catalog."""
    deadline = time.monotonic() + 30        # a capture's watchdog may still be finishing its undo (held)
    while list(journal.journal_dir().glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert journal.abandoned() == []        # (entries of live labmgr processes are theirs)
    for lab in labs:
        assert leftovers(hypervisor, lab) == [], lab
    snapshots = paths.snapshots_dir() / ENV
    assert list(snapshots.glob(".partial-*")) == [] if snapshots.exists() else True
    store = fp["folder"] / "store"
    assert [p for p in store.rglob("*") if p.name.endswith((".partial", ".tmp"))] == []
    ours = {r.name for r in records.all_records() if r.environment == ENV}
    assert [p for p in paths.labs_dir().glob("*/media") if p.parent.name in ours] == []
    catalog_consistent(fp)


def catalog_consistent(fp) -> None:
    with store_for(fp["env"]) as store:
        rows = store.catalog.list()
        assert all(r.path.is_file() and sha256(r.path) == r.sha256 for r in rows)
        files = {p for p in store.root.rglob("*") if p.is_file() and p.parent != store.root
                 and not p.name.endswith(".json")}
        assert files == {r.path for r in rows}


def stages_of(result: subprocess.CompletedProcess) -> list[str]:
    """The steps a run reported, from its finished-step lines ('✓ label   1.2 s')."""
    out = []
    for line in result.stderr.splitlines():
        line = line.strip()
        if line.startswith("✓"):
            out.append(line[1:].rsplit(None, 2)[0].strip())
    return out


def killed_at(stage: str, *args: str) -> subprocess.CompletedProcess:
    result = labmgr(*args, env={"LABMGR_FAULT_KILL_AT": stage})
    assert result.returncode == KILLED, (stage, result.stderr)
    return result


def labmgr_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "labmgr"]


SUITE_LOCK = "/tmp/lmt-suite.lock"


def restart_libvirtd() -> float:
    """Stop libvirtd and start it exactly as the Makefile does (``libvirtd -d``), inside the shared
    suite lock (libvirtd serves every test on this machine: a short critical section)."""
    import fcntl

    with open(SUITE_LOCK, "a") as lock:
        deadline = time.monotonic() + 900
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if held_by_an_ancestor(SUITE_LOCK):
                    break       # our own runner holds it ('flock /tmp/lmt-suite.lock pytest ...')
                assert time.monotonic() < deadline, "the suite lock stayed taken for 15 minutes"
                time.sleep(0.5)
        started = time.monotonic()
        pid = int(subprocess.run(["pgrep", "-x", "libvirtd"], capture_output=True, text=True).stdout.split()[0])
        os.kill(pid, signal.SIGTERM)
        while Path(f"/proc/{pid}").exists() and time.monotonic() - started < 30:
            time.sleep(0.1)
        subprocess.run(["libvirtd", "-d"], check=True)
        while subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True).returncode:
            assert time.monotonic() - started < 60, "libvirtd did not come back"
            time.sleep(0.2)
        return time.monotonic() - started


def held_by_an_ancestor(path: str) -> bool:
    """Is the flock on ``path`` held by one of this process's ancestors (/proc/locks)?"""
    inode = os.stat(path).st_ino
    holders = {int(f[4]) for f in (line.split() for line in Path("/proc/locks").read_text().splitlines())
               if len(f) > 5 and f[1] == "FLOCK" and f[5].rsplit(":", 1)[-1] == str(inode)}
    pid = os.getpid()
    while pid > 1:
        if pid in holders:
            return True
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return False


def lab_data(hypervisor) -> str:
    domain = hypervisor.domain(records.load(RESTORE_LAB).servers["db"].domain)
    return domain.agent(timeout=30).run(["cat", f"{DATA}/hour"]).strip()


def said_point() -> str:
    shown = labmgr("lab", "show", RESTORE_LAB)
    assert shown.returncode == 0, shown.stderr
    return next(line.split()[3] for line in shown.stdout.splitlines() if "point in time:" in line)


def drill_plan(fp, tmp_path: Path, name: str, **fields) -> Path:
    probes = tmp_path / "probes.yaml"
    probes.write_text(yaml.safe_dump({"probes": [
        {"name": "hour", "kind": "command", "server": "db", "command": f"cat {DATA}/hour"}]}))
    body = {"environment": str(fp["spec"]), "probes": str(probes), "lab_name": name,
            "report": {"directory": str(tmp_path / "reports")}, **fields}
    path = tmp_path / f"{name}.plan.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


# points kept as saved states (an instant lab's VMs) or as internal snapshots -----------------------
def previous_files(hypervisor) -> list[str]:
    """The files of a saved-state ``labmgr-previous`` in the lab VM's folder (on disk, not the record).
    A previous point's layer that the VM's overlay now stands on (the lab went back to that point)
    is the lab's disk, not a leftover: it goes at the next revert to clean."""
    folder = Path(records.load(RESTORE_LAB).host_directory) / "db"
    overlays = [p for p in folder.glob("*.qcow2") if "." not in p.stem]
    in_use = {name for overlay in overlays for name, _ in backing_chain(overlay)}
    return sorted(p.name for p in folder.iterdir()
                  if p.name in ("previous.save", "nvram.previous")
                  or (".previous-" in p.name and str(p) not in in_use))


def previous_taken(hypervisor, domain) -> bool:
    """A restore has begun keeping the lab's current point: an internal snapshot, or a state file."""
    folder = Path(records.load(RESTORE_LAB).host_directory) / "db"
    return "labmgr-previous" in domain.snapshot_names() or (folder / "previous.save").exists()


def drop_templates() -> None:
    """Forget the fault environment's warm templates, so the next lab up makes one (a lab standing
    on a template's files keeps them)."""
    from labmgr.hosts import host_for
    from labmgr.lab.template import drop_template, list_templates
    from labmgr.snapshot import list_snapshots

    for snapshot in list_snapshots(ENV):
        for template in list_templates(snapshot):
            with host_for(template.hypervisor) as host:
                drop_template(host, snapshot, template)


def template_labs(hypervisor, env) -> list[str]:
    """The names of the labs that make the fault environment's warm templates (``tpl-<key>``: other
    environments' template labs, made by other suites meanwhile, are not ours to look at)."""
    from labmgr.hypervisor.accel import choose_virt_type
    from labmgr.lab.template import template_key
    from labmgr.snapshot import list_snapshots

    virt_type = choose_virt_type(env.accel, hypervisor)
    return [f"tpl-{template_key(env, snapshot, hypervisor, virt_type)[:12]}" for snapshot in list_snapshots(ENV)]


def no_stray_templates() -> None:
    """Every directory under a snapshot's templates/ is a described template or one a lab stands on."""
    from labmgr.lab.template import TEMPLATES, list_templates
    from labmgr.snapshot import list_snapshots

    lab_files = " ".join(p.read_text() for p in paths.labs_dir().glob("*/lab.json"))
    for snapshot in list_snapshots(ENV):
        described = {Path(t.directory).name for t in list_templates(snapshot)}
        for location in snapshot.locations().values():
            folder = Path(location) / TEMPLATES
            for child in folder.iterdir() if folder.is_dir() else []:
                if child.is_dir():
                    assert child.name in described or str(child) in lab_files, child


# the results table -----------------------------------------------------------------------
def results_file() -> Path:
    return paths.state_dir() / "reliability" / "faults.jsonl"


@pytest.fixture(scope="module")
def log():
    results_file().parent.mkdir(parents=True, exist_ok=True)     # appended to: the newest row of a fault counts

    def add(fault: str, injected: str, checked: str, result: str, seconds: float) -> None:
        with results_file().open("a") as out:
            out.write(json.dumps({"fault": fault, "injected": injected, "checked": checked,
                                  "result": result, "seconds": round(seconds, 1)}) + "\n")
    return add
