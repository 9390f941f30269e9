"""Benchmark of `labmgr bisect` against a full sweep of the same day, printed as numbers measured in one run.

    .venv/bin/python bench/bisection.py [--quick] [--record]

One production server of the db test image works for N hours (24, or BENCH_HOURS; --quick: 2,
the fewest that still bisect: the newest hour bad, the search probing the one before)
and its PostgreSQL database is collected after each hour; from hour K on an
invoice is missing. In one lab of it: `bisect` with the sequence_gaps probe
(restores, seconds), then a full sweep that restores and probes every hour,
as someone without bisection would. Both must name the same first bad hour.
Builds its own production and lab and removes them after. Not a test: nothing
fails on a number.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from _common import Bench  # noqa: E402

NEEDS_LIBVIRT = True    # tests/test_bench.py marks its quick run libvirt
BENCH = Bench("bisection", __doc__)
os.environ.setdefault("LABMGR_STATE_DIR", "/var/tmp/labmgr-test-state")
os.environ.setdefault("LABMGR_ACCEL", "tcg")

from labmgr.demo import production as prod  # noqa: E402
from labmgr.dumps.hourly import collect  # noqa: E402
from labmgr.hypervisor import connect  # noqa: E402
from labmgr.image import build_image, load_recipe  # noqa: E402
from labmgr.lab.bisect import bisect_lab  # noqa: E402
from labmgr.lab.probing import probe_lab  # noqa: E402
from labmgr.lab.restore import lab_restore  # noqa: E402
from labmgr.lab.teardown import lab_down  # noqa: E402
from labmgr.lab.up import lab_up  # noqa: E402
from labmgr.snapshot import capture, delete_snapshot  # noqa: E402
from labmgr.spec import load_environment  # noqa: E402
from labmgr.timeparse import format_point  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
HOURS = 2 if BENCH.quick else int(os.environ.get("BENCH_HOURS", "24"))
BAD = 2 if BENCH.quick else HOURS * 2 // 3 + 1
T0 = datetime(2026, 1, 2, tzinfo=timezone.utc)
LAB = "lmsbench-lab"
PROBES = {"probes": [{"name": "invoice-numbers", "kind": "sequence_gaps", "server": "db", "table": "invoices",
                      "column": "no", "start": 1}]}


def psql(agent, sql: str) -> str:
    return agent.run(["runuser", "-u", "postgres", "--", "psql", "-At", "-d", "shop", "-c", sql]).strip()


def main() -> None:
    image = build_image(load_recipe(REPO / "tests" / "images" / "db.yaml"))
    work = Path(tempfile.mkdtemp(prefix="bench-bisect-", dir=os.environ["LABMGR_STATE_DIR"]))
    production = prod.Production(prefix="lmsbench", network="10.152.0.0/24", gateway="10.152.0.1", servers=[
        prod.ProdServer("db", "db01.bench.test", "10.152.0.11", "52:54:00:98:01:11", memory=768)])
    with connect(production.uri) as hypervisor:
        prod.create(hypervisor, production, image)
        taken = None
        env = None
        try:
            agent = hypervisor.domain(production.domain_name(production.servers[0])).agent(timeout=300)
            agent.run(["sh", "-c", "for i in $(seq 120); do pg_isready -q && exit 0; sleep 1; done; exit 1"])
            agent.run(["runuser", "-u", "postgres", "--", "createdb", "shop"])
            psql(agent, "CREATE TABLE invoices (no integer PRIMARY KEY, created_at timestamptz NOT NULL)")
            spec = production.spec()
            spec["servers"][0]["dumps"] = [{"name": "invoices", "kind": "postgres", "database": "shop",
                                            "via": "agent"}]
            spec["dumps"] = {"store": str(work / "store")}
            spec_path = work / "lmsbench.yaml"
            spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
            probes = work / "probes.yaml"
            probes.write_text(yaml.safe_dump(PROBES))
            env = load_environment(spec_path)
            for hour in range(1, HOURS + 1):
                stamp = T0 + timedelta(hours=hour)
                psql(agent, f"INSERT INTO invoices SELECT n, '{stamp.isoformat()}' "
                            f"FROM generate_series({(hour - 1) * 10 + 1}, {hour * 10}) n")
                if hour == BAD:
                    psql(agent, "DELETE FROM invoices WHERE no = 5")
                collect(env, taken_at=stamp)
            taken = capture(env)
            lab_up(env, spec_path, name=LAB)

            started = time.perf_counter()
            result = bisect_lab(LAB, probes)
            bisect_seconds = time.perf_counter() - started
            assert result.verdict == "found" and result.first_bad == T0 + timedelta(hours=BAD), result.message

            started = time.perf_counter()
            first_bad = None
            for hour in range(1, HOURS + 1):
                lab_restore(LAB, format_point(T0 + timedelta(hours=hour)))
                if probe_lab(LAB, probes).exit_code != 0 and first_bad is None:
                    first_bad = hour
            sweep_seconds = time.perf_counter() - started
            assert first_bad == BAD
        finally:       # each step on its own: one failing (libvirtd restarted) must not leave the rest
            for cleanup in (lambda: lab_down(LAB, hypervisor_uri=production.uri),
                            lambda: taken is not None and delete_snapshot(env.name, taken.id),
                            lambda: prod.remove(hypervisor, production)):
                try:
                    cleanup()
                except Exception as exc:
                    print(f"cleanup: {exc}")
            shutil.rmtree(work, ignore_errors=True)
    BENCH.figure("bisect.restores", result.restores, "restores", f"bisect a day of {HOURS} hours (first bad: {BAD})")
    BENCH.figure("bisect.seconds", bisect_seconds, "s", "bisect: restores and probes, wall")
    BENCH.figure("sweep.restores", HOURS, "restores", f"full sweep of the same {HOURS} hours")
    BENCH.figure("sweep.seconds", sweep_seconds, "s", "full sweep: restore and probe every hour, wall")
    BENCH.figure("speedup", sweep_seconds / bisect_seconds, "x", "sweep seconds / bisect seconds")
    BENCH.done()


if __name__ == "__main__":
    main()
