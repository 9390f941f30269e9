"""Benchmark of the dump catalog and of import re-scans, printed as numbers measured in one run.

    .venv/bin/python bench/catalog.py [--quick] [--record]

A synthetic catalog of one year of hourly dumps for 20 servers x 2 kinds
(350,400 rows, inserted in one transaction); the timeline query a TUI grid
makes for 48 hours and for a month; ``newest_good_at`` (what ``lab restore
--at`` asks per source); then ``import`` of a directory of N files against an
unchanged re-scan of it (--quick: two days, 20 small files). Not a test:
nothing fails on a number.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _common import Bench  # puts the repository on sys.path

from labmgr.dumps import DumpRecord, DumpStore, import_dir  # noqa: E402
from labmgr.spec.model import DumpSettings, DumpSource, Environment, Network, Nic, Server  # noqa: E402

SERVERS = 20
START = datetime(2025, 11, 21, tzinfo=timezone.utc)
SOURCES = (("db", "postgres", "pgdump"), ("files", "files", "tar"))
BENCH = Bench("catalog", __doc__)
HOURS = 48 if BENCH.quick else 365 * 24
IMPORT_FILES = 20 if BENCH.quick else int(os.environ.get("BENCH_IMPORT_FILES", "2000"))
IMPORT_BYTES = 4096 if BENCH.quick else int(os.environ.get("BENCH_IMPORT_BYTES", str(256 * 1024)))


def timed(action, repeat: int) -> float:
    """Median seconds of ``repeat`` runs of ``action``."""
    times = []
    for _ in range(BENCH.repeat(repeat)):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def synthetic_rows(root: Path):
    rng = random.Random(7)
    for hour in range(HOURS):
        taken = START + timedelta(hours=hour)
        day = taken.strftime("%Y-%m-%d")
        stamp = taken.strftime("%Y%m%dT%H%M%SZ")
        for n in range(SERVERS):
            server = f"srv{n:02d}"
            for source, kind, ext in SOURCES:
                roll = rng.random()
                state = "bad" if roll < 0.01 else "good" if roll < 0.5 else "unverified"
                name = f"{server}--{source}--{stamp}.{ext}"
                yield DumpRecord(None, server, source, kind, taken, 1 << 20, "0" * 64, "0" * 64, False,
                                 root / server / source / day / name, state=state, collector="agent",
                                 collected_at=taken)


def environment(store: Path) -> Environment:
    servers = [Server(name=f"srv{n:02d}", hostname=f"srv{n:02d}.bench", domain=f"bench-{n:02d}",
                      nics=[Nic(network="lan", ip=f"10.9.0.{n + 10}", mac=f"52:54:00:09:00:{n + 10:02x}")],
                      dumps=[DumpSource(name="db", kind="postgres", database="app"),
                             DumpSource(name="files", kind="files", path="/srv")])
               for n in range(SERVERS)]
    return Environment(name="bench", networks=[Network(name="lan", cidr="10.9.0.0/24")], servers=servers,
                       dumps=DumpSettings(store=store))


def bench_catalog(work: Path) -> None:
    figure = BENCH.figure
    with DumpStore(work / "catalog-store") as store:
        started = time.perf_counter()
        inserted = store.catalog.add_many(synthetic_rows(store.root))
        figure("insert", time.perf_counter() - started, "s", f"build records + insert {inserted:,} rows, one transaction")
        figure("file", (store.root / "catalog.sqlite").stat().st_size / 2**20, "MiB", "catalog file")

        end = START + timedelta(hours=HOURS)
        day2 = timed(lambda: store.catalog.timeline(end - timedelta(hours=48), end), 21)
        month = timed(lambda: store.catalog.timeline(end - timedelta(days=30), end), 7)
        cells_48 = sum(len(v) for v in store.catalog.timeline(end - timedelta(hours=48), end).values())
        cells_month = sum(len(v) for v in store.catalog.timeline(end - timedelta(days=30), end).values())
        figure("timeline_48h", day2 * 1000, "ms", f"timeline query, 48 hours ({cells_48:,} cells)")
        figure("timeline_30d", month * 1000, "ms", f"timeline query, 30 days ({cells_month:,} cells)")
        figure("timeline_30d_over_48h", month / day2, "×", f"timeline 30 days / 48 hours ({cells_month / cells_48:.0f}× cells)")

        rng = random.Random(3)
        points = [(f"srv{rng.randrange(SERVERS):02d}", rng.choice(SOURCES)[0],
                   START + timedelta(seconds=rng.randrange(HOURS * 3600))) for _ in range(2000)]
        started = time.perf_counter()
        for server, source, at in points:
            store.catalog.newest_good_at(server, source, at)
        figure("newest_good_at", (time.perf_counter() - started) / len(points) * 1e6, "µs",
               "newest_good_at, one source (2,000 random points)")
        whole_env = timed(lambda: [store.catalog.newest_good_at(f"srv{n:02d}", s[0], end)
                                   for n in range(SERVERS) for s in SOURCES], 21)
        figure("newest_good_at_env", whole_env * 1000, "ms",
               f"newest_good_at, whole environment ({SERVERS * len(SOURCES)} sources)")
        plan = store.catalog.db.execute(
            "EXPLAIN QUERY PLAN SELECT taken_at / 3600 AS hour, server, source, count(*) FROM dumps "
            "WHERE taken_at >= 0 AND taken_at < 1 GROUP BY hour, server, source").fetchall()
        BENCH.note("timeline plan: " + "; ".join(step[-1] for step in plan))


def bench_import(work: Path) -> None:
    incoming = work / "incoming"
    incoming.mkdir()
    block = os.urandom(IMPORT_BYTES)
    for i in range(IMPORT_FILES):
        taken = START + timedelta(hours=i // (SERVERS * len(SOURCES)))
        n, (source, _, ext) = (i // len(SOURCES)) % SERVERS, SOURCES[i % len(SOURCES)]
        (incoming / f"srv{n:02d}--{source}--{taken:%Y%m%dT%H%M%SZ}.{ext}").write_bytes(block[:-1] + bytes([i % 256]))
    env = environment(work / "import-store")
    volume = f"{IMPORT_FILES:,} files, {IMPORT_FILES * IMPORT_BYTES / 2**20:,.1f} MiB"

    started = time.perf_counter()
    first = import_dir(env, incoming)
    first_seconds = time.perf_counter() - started
    assert len(first.added) == IMPORT_FILES and not first.rejected, first.rejected[:3]
    rescan = timed(lambda: import_dir(env, incoming), 5)
    again = import_dir(env, incoming)
    assert again.skipped_unchanged == IMPORT_FILES and not again.added
    BENCH.figure("import_first", first_seconds * 1000, "ms", f"import, first run (hash + link), {volume}")
    BENCH.figure("import_rescan", rescan * 1000, "ms", f"import, unchanged re-scan, {volume}")
    BENCH.figure("import_first_over_rescan", first_seconds / rescan, "×", "first import / unchanged re-scan")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="labmgr-bench-", dir=os.environ.get("BENCH_DIR", "/var/tmp")) as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        bench_catalog(work)
        bench_import(work)
        BENCH.note(f"(whole benchmark {time.perf_counter() - started:.1f} s)")
    BENCH.done()


if __name__ == "__main__":
    main()
