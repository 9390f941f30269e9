"""Instant labs: resumed from a snapshot's warm template against booted cold, in one run.

    make bench      (or: .venv/bin/python bench/instant.py [--quick] [--record])

For a production of three servers (the test image; --quick: one server, one
repeat), side by side:

1. cold `lab up` against instant `lab up` (resumed from the template);
2. the first verified point: `lab up` + `lab restore` + probes, cold and instant;
3. making the template (a cold boot, then every VM's state saved) and its size;
4. how a lab's own definition reaches the template's saved state: a per-lab
   copy of the state file with its header rewritten, against the small per-lab
   header and the template's stream fed through a FIFO (what labmgr does);
5. the clean point: libvirt's internal snapshot against a saved state over
   read-only layers (take and revert, one VM).

It builds its own production (prefix lmi-bench) and removes everything after.
Not a test: nothing fails on a number.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath

import yaml

from _common import REPO, Bench  # puts the repository on sys.path

os.environ.setdefault("LABMGR_STATE_DIR", "/var/tmp/labmgr-test-state")
os.environ.setdefault("LABMGR_ACCEL", "tcg")

from labmgr.demo import production as prod  # noqa: E402
from labmgr.dumps.hourly import collect  # noqa: E402
from labmgr.dumps.store import store_root  # noqa: E402
from labmgr.hosts import host_for  # noqa: E402
from labmgr.hypervisor import connect  # noqa: E402
from labmgr.image import build_image, load_recipe  # noqa: E402
from labmgr.lab import records, savedstate  # noqa: E402
from labmgr.lab.pointintime import CLEAN, PREVIOUS, SAVED, InternalSnapshots, SavedStates, settle  # noqa: E402
from labmgr.lab.restore import lab_restore  # noqa: E402
from labmgr.lab.teardown import lab_down  # noqa: E402
from labmgr.lab.template import list_templates, warm  # noqa: E402
from labmgr.lab.up import lab_up  # noqa: E402
from labmgr.probes import load_probes, run_probes  # noqa: E402
from labmgr.snapshot import capture, delete_snapshot  # noqa: E402
from labmgr.spec import load_environment  # noqa: E402
from labmgr.timeparse import format_point  # noqa: E402

NEEDS_LIBVIRT = True
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
NOTES = "/var/lib/lmi-notes"
LAB = "lmi-bench-lab"


def main() -> None:
    bench = Bench("instant", __doc__)
    count = 1 if bench.quick else 3
    image = build_image(load_recipe(REPO / "tests" / "images" / "base.yaml"))
    production = prod.Production(prefix="lmi-bench", network="10.95.0.0/24", gateway="10.95.0.1", servers=[
        prod.ProdServer(f"s{i}", f"s{i}.bench.test", f"10.95.0.{11 + i}", f"52:54:00:95:00:{11 + i:02x}",
                        memory=384) for i in range(count)], boot_timeout=900)
    work = Path(os.environ["LABMGR_STATE_DIR"]) / "bench-instant"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    hypervisor = connect(production.uri)
    env = snapshot = None
    try:
        prod.create(hypervisor, production, image)
        spec = production.spec()
        spec["servers"][0]["dumps"] = [{"name": "notes", "kind": "files", "path": NOTES, "via": "agent"}]
        spec["dumps"] = {"store": str(work / "store")}
        spec_path = work / "lmi-bench.yaml"
        spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
        env = load_environment(spec_path)
        agent = hypervisor.domain(production.domain_name(production.servers[0])).agent(timeout=60)
        agent.run(["sh", "-c", f"mkdir -p {NOTES} && echo hour-1 > {NOTES}/now"])
        assert not collect(env, taken_at=T0).failed
        probes_path = work / "probes.yaml"
        probes_path.write_text(yaml.safe_dump({"probes": [{"name": "notes", "kind": "command", "server": "s0",
                                                           "command": f"cat {NOTES}/now", "output_matches": "hour-1"}]}))
        probes = load_probes(probes_path, env)
        snapshot = capture(env)

        def verified_point(cold: bool) -> tuple[float, float]:
            started = time.monotonic()
            lab_up(env, spec_path, name=LAB, snapshot_id=snapshot.id, cold=cold)
            up = time.monotonic() - started
            lab_restore(LAB, format_point(T0 + timedelta(minutes=30)))
            results = run_probes(records.load(LAB), env, probes)
            assert all(r.passed for r in results), [r.detail for r in results]
            return up, time.monotonic() - started

        os.environ["LABMGR_CLEAN_POINT"] = "snapshot"      # today's cold lab, for the clean point below
        cold_up, cold_first = verified_point(cold=True)
        clean_point(bench, hypervisor, env)
        lab_down(LAB)
        os.environ.pop("LABMGR_CLEAN_POINT")

        started = time.monotonic()
        template = warm(env, spec_path, snapshot)
        bench.figure("template.seconds", time.monotonic() - started, "s", f"making the template ({count} servers)")
        bench.figure("template.size", template.size / 2**20, "MiB", "the template's size on disk")
        ups, firsts = [], []
        for _ in range(bench.repeat(3)):
            up, first = verified_point(cold=False)
            ups.append(up)
            firsts.append(first)
            if len(ups) < bench.repeat(3):
                lab_down(LAB)
        instant_up, instant_first = statistics.median(ups), statistics.median(firsts)
        bench.figure("cold.up", cold_up, "s", f"cold lab up, {count} servers")
        bench.figure("instant.up", instant_up, "s", f"instant lab up, {count} servers (median)")
        bench.figure("up.ratio", cold_up / instant_up, "x", "cold / instant lab up")
        bench.figure("cold.first_point", cold_first, "s", "cold: lab up + restore + probes")
        bench.figure("instant.first_point", instant_first, "s", "instant: lab up + restore + probes (median)")
        bench.figure("first_point.ratio", cold_first / instant_first, "x", "cold / instant first verified point")
        header_ways(bench, hypervisor, env)
        lab_down(LAB)
    finally:
        for name in (LAB,):
            if records.lab_dir(name).exists():
                lab_down(name, hypervisor_uri=production.uri)
        if env and snapshot:
            delete_snapshot(env.name, snapshot.id)
        prod.remove(hypervisor, production)
        if env:
            shutil.rmtree(store_root(env), ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        hypervisor.close()
    bench.done()


def clean_point(bench: Bench, hypervisor, env) -> None:
    """One VM of a cold lab: internal snapshot against saved state, take and revert."""
    record = records.load(LAB)
    server = env.servers[0].name
    with host_for(hypervisor.uri) as host:
        snapshots = InternalSnapshots(hypervisor.domain(record.servers[server].domain))
        take_snap = timed(lambda: snapshots.take(PREVIOUS))
        revert_snap = timed(lambda: snapshots.revert(PREVIOUS))
        snapshots.drop(PREVIOUS)
        record.servers[server].points = SAVED
        saved = SavedStates(hypervisor, host, record, server)
        take_saved = timed(lambda: saved.take(PREVIOUS))
        revert_saved = timed(lambda: saved.revert(PREVIOUS))
        saved.drop(PREVIOUS)
    bench.figure("clean.snapshot.take", take_snap, "s", "clean point: internal snapshot, take (1 VM)")
    bench.figure("clean.snapshot.revert", revert_snap, "s", "clean point: internal snapshot, revert")
    bench.figure("clean.saved.take", take_saved, "s", "clean point: saved state, take (save + resume)")
    bench.figure("clean.saved.revert", revert_saved, "s", "clean point: saved state, revert (resume)")


def header_ways(bench: Bench, hypervisor, env) -> None:
    """One VM of the instant lab resumed from the template: a per-lab rewritten copy, or the FIFO."""
    record = records.load(LAB)
    server = env.servers[0].name
    lab_server = record.servers[server]
    clean = savedstate.SavedPoint.from_dict(lab_server.saved[CLEAN])
    copies, fifos = [], []
    with host_for(hypervisor.uri) as host:
        for _ in range(bench.repeat(3)):
            hypervisor.domain(lab_server.domain).destroy()
            started = time.monotonic()
            copy = PurePosixPath(clean.header).with_suffix(".copy")
            savedstate.run(host, f"cp {clean.state} {copy} && dd if={clean.header} of={copy} conv=notrunc "
                                 "status=none")
            fresh = savedstate.SavedPoint(state=str(copy), layers=clean.layers)
            settle(savedstate.resume(hypervisor, host, fresh, lab_server.domain, lab_server.overlays), reseed=True)
            copies.append(time.monotonic() - started)
            host.remove_file(copy)
            hypervisor.domain(lab_server.domain).destroy()
            started = time.monotonic()
            settle(savedstate.resume(hypervisor, host, clean, lab_server.domain, lab_server.overlays), reseed=True)
            fifos.append(time.monotonic() - started)
        state_mib = host.size(clean.state) / 2**20
    bench.figure("resume.copy", statistics.median(copies), "s", "resume 1 VM: per-lab copy, header rewritten")
    bench.figure("resume.fifo", statistics.median(fifos), "s", "resume 1 VM: per-lab header + FIFO (chosen)")
    bench.figure("resume.copy_bytes", state_mib, "MiB", "written per VM per lab up by the copy (FIFO: 0.07)")


def timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


if __name__ == "__main__":
    main()
