"""Soak: 24 restore cycles in one lab; labmgr's memory and open file descriptors, libvirt's
domain and snapshot counts and disk use must stay flat.

One production server (the test base image) with a files dump collected through the agent at
two simulated hours; one lab; then the lab is switched between the two hours 24 times, in this
process (so a leak in labmgr shows in its own memory and descriptors). After each cycle the
figures are measured from outside the core: /proc/self (RSS, fds), libvirt's lists, ``du``.

    LABMGR_ACCEL=tcg LABMGR_STATE_DIR=/var/tmp/labmgr-test-state python bench/soak.py [--quick] [--record]

--quick: 3 cycles (what `make test` runs: the soak still works).

Prints a table and writes ``$LABMGR_STATE_DIR/reliability/soak.json`` (docs/reliability.md;
--quick writes ``soak-quick.json``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from _common import Bench  # noqa: E402

from labmgr import paths  # noqa: E402
from labmgr.demo import production as prod  # noqa: E402
from labmgr.dumps.hourly import collect  # noqa: E402
from labmgr.hypervisor import connect  # noqa: E402
from labmgr.image import build_image, load_recipe  # noqa: E402
from labmgr.lab import records  # noqa: E402
from labmgr.lab.restore import lab_restore  # noqa: E402
from labmgr.lab.teardown import lab_down  # noqa: E402
from labmgr.lab.up import lab_up  # noqa: E402
from labmgr.snapshot import capture, delete_snapshot  # noqa: E402
from labmgr.spec import load_environment  # noqa: E402

NEEDS_LIBVIRT = True    # tests/test_bench.py marks its quick run libvirt
PREFIX, LAB, DATA = "lmf-soak", "lmf-soak-lab", "/var/lib/app/data"
TESTS = Path(__file__).parent.parent / "tests"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def disk_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True).stdout.split()
    return int(out[0]) / 1024 if out else 0.0


def measure(hypervisor, domain_name: str, cycle: int, seconds: float, hour: int, seen: str) -> dict:
    domain = hypervisor.domain(domain_name)
    return {"cycle": cycle, "seconds": round(seconds, 1), "hour": hour, "guest_has": seen,
            "rss_mib": round(rss_mib(), 1), "fds": len(os.listdir("/proc/self/fd")),
            "domains": len([d for d in hypervisor.domain_names() if d.startswith(PREFIX)]), "lab_snapshots": len(domain.snapshot_names()),
            "lab_dir_mib": round(disk_mib(records.lab_dir(LAB)), 1),
            "overlay_mib": round(sum(Path(p).stat().st_blocks * 512 for s in records.load(LAB).servers.values()
                                     for p in s.overlays.values()) / 2**20, 1)}


def main(cycles: int = 24) -> int:
    work = Path(tempfile.mkdtemp(prefix="lmf-soak-"))
    image = build_image(load_recipe(TESTS / "images" / "base.yaml"))
    environment = prod.Production(prefix=PREFIX, network="10.94.0.0/24", gateway="10.94.0.1", servers=[
        prod.ProdServer("db", "db01.soak.test", "10.94.0.11", "52:54:00:94:00:11", memory=384)])
    rows: list[dict] = []
    with connect("qemu:///system") as hypervisor:
        prod.create(hypervisor, environment, image)
        snapshot = None
        try:
            spec = environment.spec()
            spec["servers"][0]["dumps"] = [{"name": "data", "kind": "files", "path": DATA, "via": "agent"}]
            spec["dumps"] = {"store": str(work / "store")}
            spec_path = work / f"{PREFIX}.yaml"
            spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
            env = load_environment(spec_path)
            agent = hypervisor.domain(environment.domain_name(environment.servers[0])).agent(timeout=60)
            t0 = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
            hours = {1: t0 + timedelta(hours=1), 2: t0 + timedelta(hours=2)}
            for hour, moment in hours.items():
                agent.run(["sh", "-c", f"mkdir -p {DATA} && echo hour{hour} > {DATA}/hour"])
                assert not collect(env, taken_at=moment).failed
            snapshot = capture(env)
            record = lab_up(env, spec_path, name=LAB, snapshot_id=snapshot.id)
            domain_name = record.servers["db"].domain
            for cycle in range(1, cycles + 1):
                hour = 1 + cycle % 2
                started = time.monotonic()
                lab_restore(LAB, hours[hour].isoformat())
                seen = hypervisor.domain(domain_name).agent(timeout=30).run(["cat", f"{DATA}/hour"]).strip()
                rows.append(measure(hypervisor, domain_name, cycle, time.monotonic() - started, hour, seen))
                print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
        finally:
            if records.lab_dir(LAB).exists():
                lab_down(LAB)
            if snapshot is not None:
                delete_snapshot(env.name, snapshot.id)
            prod.remove(hypervisor, environment)
    first, last = rows[0], rows[-1]
    summary = {"cycles": len(rows), "all_correct": all(r["guest_has"] == f"hour{r['hour']}" for r in rows),
               "restore_seconds_median": sorted(r["seconds"] for r in rows)[len(rows) // 2],
               "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               **{f"{k}_first_last": [first[k], last[k]] for k in
                  ("rss_mib", "fds", "domains", "lab_snapshots", "lab_dir_mib", "overlay_mib")},
               **{f"{k}_after_cycle2_max_growth": round(max(r[k] for r in rows[1:]) - rows[1][k], 1)
                  for k in ("rss_mib", "fds", "domains", "lab_snapshots", "lab_dir_mib", "overlay_mib")},
               "rows": rows}
    # the quick run (make test) only proves the soak works: it keeps the 24-cycle figures the docs show
    out = paths.state_dir() / "reliability" / ("soak-quick.json" if bench.quick else "soak.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    growth = {k: summary[f"{k}_after_cycle2_max_growth"] for k in
              ("rss_mib", "fds", "domains", "lab_snapshots", "lab_dir_mib")}
    bench.figure("cycles", summary["cycles"], "cycles", "restore cycles in one lab")
    bench.figure("restore_median", summary["restore_seconds_median"], "s", "one restore cycle (median)")
    bench.figure("rss_growth", growth["rss_mib"], "MiB", "labmgr RSS growth after cycle 2")
    bench.figure("fds_growth", growth["fds"], "fds", "open descriptors growth after cycle 2")
    bench.figure("domains_growth", growth["domains"], "domains", "libvirt domains growth after cycle 2")
    bench.figure("snapshots_growth", growth["lab_snapshots"], "snapshots", "lab snapshots growth after cycle 2")
    bench.figure("disk_growth", growth["lab_dir_mib"], "MiB", "lab directory growth after cycle 2")
    bench.done()
    return 0 if summary["all_correct"] else 1


if __name__ == "__main__":
    bench = Bench("soak", __doc__)
    sys.exit(main(3 if bench.quick else 24))
