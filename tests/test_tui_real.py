"""The real TUI in tmux against a real lab: move to an hour, Enter, read the probe verdict off the screen.

Production is the shared PostgreSQL VM (conftest db_production) with two collected hours
of invoices; a lab of it; a probe file. ``labmgr tui SPEC --lab LAB --probes
FILE`` runs in a detached tmux session; keys go in with send-keys and the
screen comes out with capture-pane, as a person would see it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from labmgr import paths
from labmgr.dumps.hourly import collect
from labmgr.lab import records
from labmgr.lab.teardown import lab_down
from labmgr.lab.up import lab_up
from labmgr.snapshot import capture, delete_snapshot
from labmgr.spec import load_environment

from helpers import REPO, invoicing_spec, psql

pytestmark = pytest.mark.libvirt
PREFIX = "lmt-tui"
LAB = "lmt-tui-lab"
SESSION = "lmt-tui"
T0 = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)
PROBES = {"probes": [
    {"name": "invoice-count", "kind": "sql", "server": "db", "engine": "postgres", "database": "shop",
     "query": "SELECT count(*) FROM invoices", "expect": {"at_least": 10}},
    {"name": "invoice-numbers", "kind": "sequence_gaps", "server": "db", "table": "invoices", "column": "no",
     "start": 1, "what": "invoice numbers"},
]}


@pytest.fixture(scope="module")
def real_lab(hypervisor, db_production, tmp_path_factory):
    """The shared db production with invoices collected at 07:00 (10) and 08:00 (20); a lab of it; the probe file."""
    agent, spec_path = invoicing_spec(hypervisor, db_production, tmp_path_factory.mktemp("production"), name=PREFIX)
    env = load_environment(spec_path)
    for hour in (1, 2):
        stamp = T0 + timedelta(hours=hour)
        first = (hour - 1) * 10 + 1
        psql(agent, f"INSERT INTO invoices SELECT n, '{stamp.isoformat()}' FROM generate_series({first}, "
                    f"{first + 9}) n")
        assert not collect(env, taken_at=stamp).failed
    taken = capture(env)
    try:
        lab_up(env, spec_path, name=LAB)
        try:
            probes = tmp_path_factory.mktemp("lmt-tui-probes") / "probes.yaml"
            probes.write_text(yaml.safe_dump(PROBES, sort_keys=False))
            yield spec_path, probes
        finally:
            lab_down(LAB, hypervisor_uri="qemu:///system")
    finally:
        delete_snapshot(env.name, taken.id)
        with contextlib.suppress(OSError):
            (paths.snapshots_dir() / env.name).rmdir()


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def wait_for(text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        shown = screen()
        if text in shown:
            return shown
        assert time.monotonic() < deadline, f"'{text}' never appeared; the screen:\n{shown}"
        time.sleep(0.5)


@pytest.fixture
def tui_session(real_lab):
    spec, probes = real_lab
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in os.environ.items()
                   if k in ("LABMGR_STATE_DIR", "LABMGR_ACCEL", "PATH"))
    command = (f"cd {shlex.quote(str(REPO))} && env {env} TERM=xterm-256color {shlex.quote(sys.executable)} "
               f"-m labmgr tui {shlex.quote(str(spec))} --lab {LAB} --probes {shlex.quote(str(probes))}; "
               "echo labmgr exited $?; sleep 600")
    tmux("new-session", "-d", "-s", SESSION, "-x", "200", "-y", "50", command)
    try:
        yield
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)


def test_restore_an_hour_from_the_timeline_and_read_the_verdict(tui_session) -> None:
    shown = wait_for("2026-11-20 08:00", timeout=60)       # the timeline, newest hour first, cursor on it
    assert f"lab {LAB} (up)" in shown and "clean clone" in shown
    assert "2026-11-20 07:00" in shown
    tmux("send-keys", "-t", SESSION, "Down")
    wait_for("2026-11-20 07:00 UTC · db/invoices", timeout=20)
    tmux("send-keys", "-t", SESSION, "Enter")
    wait_for("restore lab lmt-tui-lab to 2026-11-20 07:00 UTC", timeout=20)
    wait_for(f"lab {LAB} is at 2026-11-20T07:00Z · probes PASS: 2 of 2 passed", timeout=600)
    # the grid marks the lab's hour and its verdict
    shown = wait_for("2026-11-20 07:00 ▶ PASS", timeout=20)
    assert "2026-11-20 08:00   " in shown                 # the other hour: not restored, no verdict
    assert records.load(LAB).point["at"] == "2026-11-20T07:00Z"
    tmux("send-keys", "-t", SESSION, "3")                  # the Probes screen: the same verdict, per probe
    shown = wait_for("PASS: 2 of 2 probes passed at 2026-11-20T07:00Z", timeout=20)
    assert "invoice-count" in shown and "got 10" in shown
    tmux("send-keys", "-t", SESSION, "Down", "Enter")     # invoice-numbers: its whole output
    wait_for("invoice-numbers on db (sequence_gaps, passed)", timeout=20)
    wait_for("10 invoice numbers, 1..10, none missing", timeout=20)
    tmux("send-keys", "-t", SESSION, "Escape")
    deadline = time.monotonic() + 20         # a key right after Esc would read as Alt+key: wait for the close
    while "(sequence_gaps, passed)" in screen():
        assert time.monotonic() < deadline, screen()
        time.sleep(0.3)
    tmux("send-keys", "-t", SESSION, "q")
    wait_for("labmgr exited 0", timeout=20)
