"""Instant labs on real VMs: a snapshot's warm template, and labs resumed from it side by side.

One production of two servers (prefix lmi), one snapshot, one template (a cold
boot), then two instant labs at once. Checked from inside the guests and with
libvirt: identity, isolation, the clock, a restore and its probes, a corrupt
template remade, nothing left behind.
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from labmgr import paths
from labmgr.demo import production as prod
from labmgr.dumps.hourly import collect
from labmgr.dumps.store import store_root
from labmgr.lab import records
from labmgr.lab.restore import lab_restore
from labmgr.lab.teardown import lab_down
from labmgr.lab.template import list_templates
from labmgr.lab.up import lab_up
from labmgr.probes import load_probes, run_probes
from labmgr.progress import SilentReporter
from labmgr.snapshot import capture, delete_snapshot, find_snapshot
from labmgr.spec import load_environment
from labmgr.timeparse import format_point

from helpers import leftovers

pytestmark = pytest.mark.libvirt
LABS = ("lmi-x1", "lmi-x2")     # no other lmi name starts with these
T0 = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)
NOTES = "/var/lib/lmi-notes"
CLOCKS: dict[tuple[str, str], float] = {}      # (lab, server) -> guest clock minus host clock after lab up


class Notes(SilentReporter):
    """A reporter that keeps what lab up says (the one-line note of a remade template)."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)


@pytest.fixture(scope="module")
def iprod(hypervisor, base_image, tmp_path_factory):
    environment = prod.Production(prefix="lmi-prod", network="10.93.0.0/24", gateway="10.93.0.1", servers=[
        prod.ProdServer("db", "db01.lmi.test", "10.93.0.11", "52:54:00:93:00:11", memory=384),
        prod.ProdServer("app", "app01.lmi.test", "10.93.0.12", "52:54:00:93:00:12", memory=384)],
        boot_timeout=900)    # TCG on a loaded 2-core host
    try:
        yield from _production(hypervisor, base_image, tmp_path_factory, environment)
    finally:
        prod.remove(hypervisor, environment)


def _production(hypervisor, base_image, tmp_path_factory, environment):
    prod.create(hypervisor, environment, base_image)
    agent = hypervisor.domain(environment.domain_name(environment.servers[0])).agent(timeout=60)
    spec = environment.spec()
    spec["servers"][0]["dumps"] = [{"name": "notes", "kind": "files", "path": NOTES, "via": "agent"}]
    spec["dumps"] = {"store": str(tmp_path_factory.mktemp("store"))}
    path = tmp_path_factory.mktemp("spec") / "lmi-prod.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = load_environment(path)
    try:
        for hour in (1, 2):      # two hours of notes in production, each collected
            agent.run(["sh", "-c", f"mkdir -p {NOTES} && echo hour-{hour} > {NOTES}/now"])
            assert not collect(env, taken_at=T0 + timedelta(hours=hour)).failed
        yield env, path, agent
    finally:
        subprocess.run(["rm", "-rf", str(store_root(env))])


@pytest.fixture(scope="module")
def snapshot(iprod, hypervisor):
    """The module's snapshot. Deleting it at the end is checked (after the labs are down, whatever order
    the tests ran in): its folder, every template's files and the cold lab each template was made from go."""
    env, _, _ = iprod
    taken = capture(env)
    yield taken
    folder = find_snapshot(env.name, taken.id).path
    templates = list_templates(find_snapshot(env.name, taken.id))
    delete_snapshot(env.name, taken.id)
    assert not folder.exists()
    for template in templates:
        assert not os.path.exists(template.directory)
        assert leftovers(hypervisor, f"tpl-{template.key[:12]}") == []


@pytest.fixture(scope="module")
def labs(iprod, snapshot, hypervisor):
    env, spec, _ = iprod
    made = {}
    try:
        for name in LABS:
            started = time.monotonic()
            made[name] = lab_up(env, spec, name=name, snapshot_id=snapshot.id)
            made[name].timings["lmi_total"] = time.monotonic() - started
            # the clock right after lab up (a TCG guest on a loaded host drifts later: no NTP in a lab)
            for server, lab_server in made[name].servers.items():
                guest = float(hypervisor.domain(lab_server.domain).agent(timeout=30).run(["date", "+%s.%N"]))
                CLOCKS[(name, server)] = guest - time.time()
        yield made
    finally:
        for name in LABS:
            if records.lab_dir(name).exists() or leftovers(hypervisor, name):
                lab_down(name, hypervisor_uri="qemu:///system")
        for name in LABS:                   # checked here, so no test has to run last
            assert leftovers(hypervisor, name) == []


def agent(hypervisor, record, server):
    return hypervisor.domain(record.servers[server].domain).agent(timeout=30)


def test_two_instant_labs_of_one_template_keep_production_identity(labs, iprod, hypervisor, snapshot):
    env, _, _ = iprod
    templates = list_templates(find_snapshot(env.name, snapshot.id))
    assert len(templates) == 1 and templates[0].size > 0
    for name, record in labs.items():
        assert record.template == templates[0].key
        assert "resume" in record.timings and "boot" not in record.timings, record.timings
        for server in env.servers:
            domain = hypervisor.domain(record.servers[server.name].domain)
            assert domain.state == "running"
            inside = agent(hypervisor, record, server.name)
            assert inside.run(["hostname"]).strip() == server.hostname
            links = inside.run(["ip", "-o", "link", "show"])
            addrs = inside.run(["ip", "-o", "-4", "addr", "show"])
            for nic in server.nics:
                assert nic.mac in links and f"{nic.ip}/24" in addrs, (name, server.name, links, addrs)
    # the two labs' VMs are different domains on different bridges
    a, b = labs.values()
    assert {s.domain for s in a.servers.values()}.isdisjoint(s.domain for s in b.servers.values())
    assert a.networks["lan"].bridge != b.networks["lan"].bridge


def test_the_two_labs_are_isolated(labs, hypervisor):
    a, b = labs["lmi-x1"], labs["lmi-x2"]
    db_ip = "10.93.0.11"
    down = agent(hypervisor, a, "db")
    down.run(["ip", "link", "set", "dev", _nic(down), "down"])
    try:
        # lab a's db is silent; lab b's db has the same address and answers in lab b only
        assert agent(hypervisor, a, "app").exec(["ping", "-c", "2", "-W", "1", db_ip], timeout=30).exit_code != 0
        assert agent(hypervisor, b, "app").exec(["ping", "-c", "2", "-W", "2", db_ip], timeout=30).ok
    finally:
        down.run(["ip", "link", "set", "dev", _nic(down), "up"])


def _nic(inside) -> str:
    return next(line.split(":")[1].strip() for line in inside.run(["ip", "-o", "link", "show"]).splitlines()
                if "link/ether 52:54:00:93" in line)


def test_guest_clock_is_the_hosts(labs):
    """The template was saved minutes before: each resumed guest's clock was set to the host's."""
    assert len(CLOCKS) == 4
    for (lab, server), offset in CLOCKS.items():
        assert abs(offset) < 2, (lab, server, offset)


def test_restore_and_probes_in_an_instant_lab(labs, iprod, hypervisor, tmp_path):
    env, _, _ = iprod
    probes = tmp_path / "probes.yaml"
    probes.write_text(yaml.safe_dump({"probes": [{"name": "notes-hour", "kind": "command", "server": "db",
                                                  "command": f"cat {NOTES}/now", "output_matches": "hour-1"}]}))
    inside = agent(hypervisor, labs["lmi-x1"], "db")
    inside.run(["sh", "-c", "echo left-over > /root/marker"])
    lab_restore("lmi-x1", format_point(T0 + timedelta(hours=1, minutes=30)))
    record = records.load("lmi-x1")
    inside = agent(hypervisor, record, "db")
    assert inside.run(["cat", f"{NOTES}/now"]).strip() == "hour-1"
    assert inside.exec(["test", "-e", "/root/marker"]).exit_code != 0      # reverted to clean first
    [result] = run_probes(record, env, load_probes(probes, env))
    assert result.passed, result.detail
    lab_restore("lmi-x1", format_point(T0 + timedelta(hours=2)))
    assert agent(hypervisor, record, "db").run(["cat", f"{NOTES}/now"]).strip() == "hour-2"
    # the previous point is gone, the clean point is still the template's
    record = records.load("lmi-x1")
    assert set(record.servers["db"].saved) == {"labmgr-clean"}
    assert not any("previous" in p.name for p in (paths.labs_dir() / "lmi-x1" / "db").iterdir())


def test_a_corrupt_template_is_reported_dropped_and_remade(labs, iprod, hypervisor, snapshot):
    env, spec, _ = iprod
    [template] = list_templates(find_snapshot(env.name, snapshot.id))
    state = template.servers["app"]["state"]
    with open(state, "r+b") as f:           # garbage in the middle of QEMU's migration stream
        f.seek(os.path.getsize(state) // 2)
        f.write(os.urandom(1 << 20))
    notes = Notes()
    record = lab_up(env, spec, name="lmi-x3", snapshot_id=snapshot.id, reporter=notes)
    try:
        said = [n for n in notes.notes if "did not resume" in n]
        assert len(said) == 1 and "\n" not in said[0], notes.notes
        assert "is damaged (its sha256 changed" in said[0]     # caught before QEMU loads bad pages
        [remade] = list_templates(find_snapshot(env.name, snapshot.id))
        assert remade.key == template.key and remade.directory != template.directory
        # labs a and b were resumed from the dropped template and still stand on its files
        assert os.path.exists(state) and records.load("lmi-x1").state == "up"
        assert record.state == "up"
        assert agent(hypervisor, record, "app").run(["hostname"]).strip() == "app01.lmi.test"
    finally:
        lab_down("lmi-x3")
    assert leftovers(hypervisor, "lmi-x3") == []


def test_lab_down_leaves_nothing_and_the_template_stays(labs, iprod, hypervisor, snapshot):
    """A third instant lab of the template, taken down: nothing of it is left, and the template the other
    labs stand on is still there. (Deleting the snapshot is checked by its fixture, at the module's end.)"""
    env, spec, _ = iprod
    before = [t.directory for t in list_templates(find_snapshot(env.name, snapshot.id))]
    lab_up(env, spec, name="lmi-x4", snapshot_id=snapshot.id)
    try:
        assert leftovers(hypervisor, "lmi-x4") != []       # the check sees a lab that is there
    finally:
        lab_down("lmi-x4")
    assert leftovers(hypervisor, "lmi-x4") == []
    assert [t.directory for t in list_templates(find_snapshot(env.name, snapshot.id))] == before
    assert all(records.load(name).state == "up" for name in LABS)
