"""`labmgr demo` end to end, through the real command line and without a terminal, then `labmgr demo down`.

The demo builds its production (three VMs from the image recipe of examples/demo),
simulates a short day (`--hours 3`, the fewest it takes: the bad hour in the middle, a good hour
on each side) with its dumps, runs the drill and the sweep of every hour.
Checked here: the printed stage times, the sweep naming the bad hour (and only
it) with the missing invoice, the lab left up and usable with the commands the
demo suggests, production whole (the invoice was lost from the dump only), and
that `demo down` leaves no domain, network, volume or file of the demo.
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timedelta

import pytest

from labmgr import paths
from labmgr.demo.workdir import RECIPE, source
from labmgr.image import find_cached, load_recipe
from labmgr.lab import records

from helpers import labmgr, one_line_error, psql

pytestmark = pytest.mark.libvirt
PREFIX = "lmdemo"
LAB = "lmdemo-lab"
HOURS = 3              # `make demo` simulates 24; the story and every check are the same with 3
                       # (each hour costs ~22 s of workload and sweep under TCG)
STAGES = ("image", "production", "workload", "drill", "sweep", "report")
HOUR_LINE = re.compile(r"^  (\d{4}-\d\d-\d\dT\d\d:00Z)\s+(ok  |FAIL)  (\d+)/(\d+) probes", re.M)
REVEAL = re.compile(r"the demo had made the dump of (\S+) miss invoice (\d+): (found|NOT found) by the probes")


def hour(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def demo(hypervisor):
    """One whole demo run (the cached image is reused when there is one). Its end is checked too:
    `demo down` (demo_down_leaves_nothing_but_the_cached_image), then a demo that cannot run. Both
    remove the demo (a new `labmgr demo` first removes the previous run), so they are this fixture's
    end rather than tests that would have to run last: the tests above pass in any order."""
    result = labmgr("demo", "--hours", str(HOURS), timeout=5400)
    yield result
    try:
        demo_down_leaves_nothing_but_the_cached_image(hypervisor)
        a_demo_that_cannot_run_says_so_in_one_line()
    finally:
        labmgr("demo", "down", timeout=600)


@pytest.mark.timeout(6000)
def test_the_demo_runs_end_to_end_with_stage_times(demo) -> None:
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "Traceback" not in demo.stderr
    for stage in STAGES:
        taken = re.search(rf"^    {stage} took (\d+\.\d) s$", demo.stdout, re.M)
        assert taken, f"no time printed for stage {stage}"
        listed = re.search(rf"^  {stage:<11} +(\d+\.\d) s", demo.stdout, re.M)
        assert listed and listed.group(1) == taken.group(1), f"stage {stage} missing from the table"
    assert re.search(r"^  total +\d+\.\d s", demo.stdout, re.M)
    # the drill's own stages (the measured RTO), and the newest hour passing every probe
    assert re.search(r"capture \d+\.\d s, clone \d+\.\d s, boot \d+\.\d s, inject \d+\.\d s, "
                     r"restore \d+\.\d s, probes \d+\.\d s", demo.stdout)
    newest = re.search(r"newest hour \((\S+)\): (\d+)/(\d+) probes passed", demo.stdout)
    assert newest and newest.group(2) == newest.group(3) and int(newest.group(3)) >= 8
    timings = json.loads((paths.state_dir() / "demo" / "timings.json").read_text())
    assert list(timings["stages"]) == list(STAGES)


def test_sequence_gaps_names_the_bad_hour_and_the_hours_around_it_pass(demo) -> None:
    verdicts = {hour(h): (v.strip(), int(p), int(t)) for h, v, p, t in HOUR_LINE.findall(demo.stdout)}
    hours = sorted(verdicts)
    assert len(hours) == HOURS and all(b - a == timedelta(hours=1) for a, b in zip(hours, hours[1:]))
    reveal = REVEAL.search(demo.stdout)
    assert reveal and reveal.group(3) == "found", demo.stdout[-2000:]
    bad, lost = hour(reveal.group(1)), int(reveal.group(2))
    assert hours[0] < bad < hours[-1]
    assert [h for h, (v, _, _) in verdicts.items() if v == "FAIL"] == [bad]
    for neighbour in (bad - timedelta(hours=1), bad + timedelta(hours=1)):
        verdict, passed, total = verdicts[neighbour]
        assert verdict == "ok" and passed == total, (neighbour, verdicts[neighbour])
    # the bad hour's line names the probe, the invoice and how many there should be
    block = demo.stdout[demo.stdout.index(f"  {reveal.group(1)}"):]
    detail = block.splitlines()[1].strip()
    invoices = (hours.index(bad) + 1) * 10
    assert detail == f"invoice-numbers: missing invoice numbers: {lost} (1 missing of 1..{invoices})", detail
    assert re.search(rf"BAD HOUR +{reveal.group(1)}: invoice-numbers: missing invoice numbers: {lost}\b",
                     demo.stdout)


def test_the_lab_is_left_up_and_the_suggested_commands_work(demo, hypervisor) -> None:
    record = records.load(LAB)
    assert record.state == "up" and record.lease_until
    reveal = REVEAL.search(demo.stdout)
    bad, lost = reveal.group(1), reveal.group(2)
    probes = paths.state_dir() / "demo" / "probes.yaml"
    assert f"labmgr lab restore {LAB} --at {bad}" in demo.stdout
    assert f"labmgr probe {LAB} --probes {probes}" in demo.stdout
    restored = labmgr("lab", "restore", LAB, "--at", bad)
    assert restored.returncode == 0, restored.stderr
    probed = labmgr("probe", LAB, "--probes", str(probes), "--only", "invoice-numbers", "--only", "app-page")
    assert probed.returncode == 1, probed.stdout + probed.stderr
    assert f"missing invoice numbers: {lost} " in probed.stdout and "1 of 2 probes passed" in probed.stdout
    # production never lost it: only that hour's dump did
    db = hypervisor.domain("lmdemo-db01").agent(timeout=60)
    assert psql(db, f"SELECT count(*) FROM invoices WHERE no = {lost}") == "1"
    assert psql(db, "SELECT count(*), max(no) FROM invoices") == f"{HOURS * 10}|{HOURS * 10}"
    # labmgr ssh as printed: the demo's servers run sshd and accept the demo's key; host key checked
    key = paths.state_dir() / "demo" / "ssh" / "id_ed25519"
    suggested = re.search(rf"labmgr ssh {LAB} (\S+) -i {re.escape(str(key))} -- hostname", demo.stdout)
    assert suggested, demo.stdout[-2000:]
    shell = labmgr("ssh", LAB, suggested.group(1), "-i", str(key), "--", "hostname")
    assert shell.returncode == 0 and shell.stdout.strip() == suggested.group(1), shell.stderr
    report = (paths.state_dir() / "demo" / "reports" / f"{LAB}.md").read_text()
    assert "missing invoice numbers" in report
    # the demo ends with a share link to its application, which serves the page under the banner
    link = re.search(r"^  (http://127\.0\.0\.1:\d+/s/\S+)", demo.stdout, re.M)
    assert link, demo.stdout[-2000:]
    import httpx

    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        page = browser.get(link.group(1))
        assert page.status_code == 200 and f'id="labmgr-lab">{LAB}<' in page.text
        assert browser.get(link.group(1).split("/s/")[0] + "/").status_code == 200


def demo_down_leaves_nothing_but_the_cached_image(hypervisor) -> None:
    down = labmgr("demo", "down", timeout=600)
    assert down.returncode == 0, down.stdout + down.stderr
    shared = subprocess.run(["pgrep", "-f", f"labmgr share {LAB} "], capture_output=True, text=True)
    assert shared.stdout == "", "the demo's share outlived demo down"
    recipe = load_recipe(source() / RECIPE)
    image = find_cached(recipe)
    assert image and f"the built image stays cached in {image.directory}" in down.stdout
    assert [d for d in hypervisor.domain_names() if d.startswith(PREFIX)] == []
    assert [n for n in hypervisor.network_names() if n.startswith(PREFIX)] == []
    volumes = [v for pool in hypervisor.conn.listAllStoragePools() if pool.isActive()
               for v in pool.listAllVolumes() if PREFIX in v.path()]
    assert volumes == []
    state = paths.state_dir()
    # the image cache keeps every build of the demo's recipe (one per recipe hash) and its lock
    cached = re.compile(rf"\.?{re.escape(recipe.name)}-[0-9a-f]+(\.lock)?")
    files = [p for p in state.rglob("*") if PREFIX in str(p.relative_to(state))
             and not (p.is_relative_to(image.directory.parent)
                      and cached.fullmatch(p.relative_to(image.directory.parent).parts[0]))]
    assert files == []
    assert not (state / "demo").exists()
    again = labmgr("demo", "down", timeout=600)          # nothing left to remove is not an error
    assert again.returncode == 0, again.stderr


def a_demo_that_cannot_run_says_so_in_one_line() -> None:
    """After demo down: a bad acceleration setting stops a demo before its production exists."""
    result = labmgr("demo", env={"LABMGR_ACCEL": "warp"}, timeout=900)
    line = one_line_error(result)
    assert "warp" in line and "demo stage 'production' failed" in line, line
    assert [d for d in result.stdout.splitlines() if "production took" in d] == []
