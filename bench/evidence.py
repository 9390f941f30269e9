"""What each restored hour's evidence costs: the data profile and the console evidence (screenshot,
serial lines) against the hour's restore and probes, as the demo's sweep does them.

    .venv/bin/python bench/evidence.py [--quick] [--record]

A production shaped like the demo's (db: PostgreSQL with an invoices table growing each hour;
app: a directory of session files; both with a screen), its hours collected, one cold lab. For
each hour: `lab restore`, the demo's kinds of probes run alone (sql, sequence_gaps,
compare_previous, freshness, command), then the profile and the console evidence taken as
`labmgr probe` takes them. The goal (issue 19): evidence and profiling under 15% of the hour's
restore and probe time. --quick: one server, two hours collected, one measured. Not a test: nothing fails
on a number.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from _common import REPO, Bench, remove_lab_and_production  # puts the repository on sys.path

os.environ.setdefault("LABMGR_STATE_DIR", "/var/tmp/labmgr-test-state")
os.environ.setdefault("LABMGR_ACCEL", "tcg")

from labmgr.demo import production as prod  # noqa: E402
from labmgr.dumps.hourly import collect  # noqa: E402
from labmgr.hosts import host_for  # noqa: E402
from labmgr.hypervisor import connect  # noqa: E402
from labmgr.image import build_image, load_recipe  # noqa: E402
from labmgr.lab import records  # noqa: E402
from labmgr.paths import state_dir  # noqa: E402
from labmgr.lab.consoles import take_consoles  # noqa: E402
from labmgr.lab.probing import channels_of  # noqa: E402
from labmgr.lab.profiler import take_profiles  # noqa: E402
from labmgr.lab.restore import lab_restore  # noqa: E402
from labmgr.lab.up import lab_up  # noqa: E402
from labmgr.probes import load_probes, run_probes  # noqa: E402
from labmgr.snapshot import capture  # noqa: E402
from labmgr.spec import load_environment  # noqa: E402
from labmgr.timeparse import format_point  # noqa: E402

BENCH = Bench("evidence", __doc__)
T0 = datetime(2026, 1, 2, tzinfo=timezone.utc)
SESSIONS = "/var/lib/php/sessions"
HOURS = 2 if BENCH.quick else 4
MEASURED = 1 if BENCH.quick else 3
LAB = "lmbev-lab"          # not a prefix of production's domain names
NEEDS_LIBVIRT = True    # tests/test_bench.py marks its quick run libvirt
PROBES = {"probes": [
    {"name": "invoice-count", "kind": "sql", "server": "db", "query": "SELECT count(*) FROM invoices",
     "expect": {"at_least": 10}},
    {"name": "invoice-numbers", "kind": "sequence_gaps", "server": "db", "table": "invoices", "column": "no",
     "start": 1},
    {"name": "invoices-grow", "kind": "compare_previous", "server": "db", "query": "SELECT count(*) FROM invoices"},
    {"name": "invoices-fresh", "kind": "freshness", "server": "db", "table": "invoices", "column": "created_at",
     "within": "2h"},
    {"name": "sessions", "kind": "command", "server": "db" if BENCH.quick else "app",
     "command": f"grep -l 'user|s:' {SESSIONS}/sess_* | wc -l", "output_matches": "^[1-9][0-9]*$"},
]}


def main() -> None:
    image = build_image(load_recipe(REPO / "tests" / "images" / "db.yaml"))
    work = Path(tempfile.mkdtemp(prefix="bench-evidence-", dir=os.environ["LABMGR_STATE_DIR"]))
    servers = [prod.ProdServer("db", "db01.bench.test", "10.87.0.11", "52:54:00:87:00:11", memory=768, screen=True),
               prod.ProdServer("app", "app01.bench.test", "10.87.0.12", "52:54:00:87:00:12", memory=512, screen=True)]
    # --quick: the sessions live on db too, one guest to boot
    production = prod.Production(prefix="lmbench-ev", network="10.87.0.0/24", gateway="10.87.0.1",
                                 servers=servers[:1] if BENCH.quick else servers)
    timings: dict[str, list[float]] = {"restore": [], "probes": [], "profile": [], "consoles": []}
    with connect(production.uri) as hypervisor:
        try:
            prod.create(hypervisor, production, image)
            spec, env = _production_day(hypervisor, production, work)
            capture(env)
            lab_up(env, spec, name=LAB, cold=True)
            probes_path = work / "probes.yaml"
            probes_path.write_text(yaml.safe_dump(PROBES, sort_keys=False))
            probes = load_probes(probes_path, env)
            with host_for(production.uri) as host:
                for hour in range(HOURS - MEASURED + 1, HOURS + 1):
                    _hour(hypervisor, host, env, probes, hour, timings)
        finally:
            remove_lab_and_production(hypervisor, LAB, production)
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(state_dir() / "evidence" / production.prefix, ignore_errors=True)

    mean = {stage: sum(values) / len(values) for stage, values in timings.items()}
    base = mean["restore"] + mean["probes"]
    BENCH.figure("restore", mean["restore"], "s", f"lab restore of one hour ({len(production.servers)} servers)")
    BENCH.figure("probes", mean["probes"], "s", "the demo's kinds of probes, alone")
    BENCH.figure("profile", mean["profile"], "s", "data profile of the hour (both servers at once)")
    BENCH.figure("consoles", mean["consoles"], "s", "screenshots and serial lines (both servers)")
    BENCH.figure("share", 100 * (mean["profile"] + mean["consoles"]) / base, "%",
                 "evidence + profile / (restore + probes); goal < 15")
    BENCH.note(f"mean of {MEASURED} hour(s)")
    BENCH.done()


def _production_day(hypervisor, production: prod.Production, work: Path):
    db = hypervisor.domain(production.domain_name(production.servers[0])).agent(timeout=60)
    app = hypervisor.domain(production.domain_name(production.servers[-1])).agent(timeout=60)
    db.run(["sh", "-c", "for i in $(seq 120); do pg_isready -q && exit 0; sleep 1; done; exit 1"], timeout=150)
    db.run(["runuser", "-u", "postgres", "--", "createdb", "shop"])
    _psql(db, "CREATE TABLE invoices (no integer PRIMARY KEY, created_at timestamptz NOT NULL, "
              "customer integer, amount numeric)")
    spec = production.spec()
    spec["servers"][0]["dumps"] = [{"name": "shop", "kind": "postgres", "database": "shop", "via": "agent"}]
    spec["servers"][-1].setdefault("dumps", []).append(
        {"name": "sessions", "kind": "files", "path": SESSIONS, "via": "agent"})
    spec["dumps"] = {"store": str(work / "store")}
    path = work / "lmbench-ev.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = load_environment(path)
    app.run(["mkdir", "-p", SESSIONS])
    for hour in range(1, HOURS + 1):      # as the demo's hour: 10 invoices, three logins
        stamp = T0 + timedelta(hours=hour)
        _psql(db, f"INSERT INTO invoices SELECT n, '{stamp.isoformat()}', n % 8, 40 + n FROM "
                  f"generate_series({(hour - 1) * 10 + 1}, {hour * 10}) n")
        app.run(["sh", "-c", f"for u in 1 2 3; do echo 'user|s:5:\"alice\";' > {SESSIONS}/sess_h{hour}u$u; done"])
        assert not collect(env, taken_at=stamp).failed
    return path, env


def _psql(agent, sql: str) -> None:
    agent.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-d", "shop", "-c", sql])


def _hour(hypervisor, host, env, probes, hour: int, timings: dict[str, list[float]]) -> None:
    started = time.monotonic()
    lab_restore(LAB, format_point(T0 + timedelta(hours=hour, minutes=30)))
    timings["restore"].append(time.monotonic() - started)
    record = records.load(LAB)
    agent_for = channels_of(hypervisor, record)
    started = time.monotonic()
    results = run_probes(record, env, probes, agent_for=agent_for)
    timings["probes"].append(time.monotonic() - started)
    assert all(r.passed for r in results if r.kind != "compare_previous"), [r.detail for r in results]
    started = time.monotonic()
    profiles = take_profiles(env, agent_for)
    timings["profile"].append(time.monotonic() - started)
    assert not any(profile["errors"] for profile, _ in profiles.values()), profiles
    started = time.monotonic()
    consoles = take_consoles(hypervisor, host, record, env.name, 10**6 + hour)
    timings["consoles"].append(time.monotonic() - started)
    assert all(c.screenshot for c in consoles), [c.error for c in consoles]


if __name__ == "__main__":
    main()
