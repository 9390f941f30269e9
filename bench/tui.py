"""Benchmark of the TUI's timeline over a big catalog, printed as numbers measured in one run.

    .venv/bin/python bench/tui.py [--quick] [--record]

The real TUI (CoreBackend, a real Catalog in a temp store) on a catalog of one
year of hourly dumps for 20 servers x 2 sources (350,400 rows), against the
same for one day: first paint (start to the grid drawn with data), a PageDown
from key to painted data (through Textual's test pilot, 40 presses), a jump to
the oldest hour, and the time to draw every visible line once. Medians of 3
runs (--quick: a week against a day, one run). Not a test: nothing fails on a number (tests/test_tui_perf.py asserts
the limits).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, Bench  # puts the repository on sys.path

sys.path.insert(0, str(REPO / "tests"))

from tui_year import first_paint, make_store  # noqa: E402

BENCH = Bench("tui", __doc__)
LONG_HOURS = 7 * 24 if BENCH.quick else 365 * 24
LONG = "1 week" if BENCH.quick else "1 year"


def measure(spec: Path) -> list[float]:
    runs = [asyncio.run(first_paint(spec)) for _ in range(BENCH.repeat(3))]
    return [statistics.median(r[i] for r in runs) for i in range(4)]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="labmgr-bench-tui-") as tmp:
        started = time.perf_counter()
        long = make_store(Path(tmp) / "long", hours=LONG_HOURS)
        BENCH.note(f"fixture: {LONG_HOURS * 40:,} rows inserted in {time.perf_counter() - started:.1f} s")
        day = make_store(Path(tmp) / "day", hours=24)
        y, d = measure(long), measure(day)
    names = (("first_paint", "first paint"), ("pagedown", "PageDown, key to painted"),
             ("jump_oldest", "jump to the oldest hour"), ("draw_grid", "draw the visible grid"))
    for (key, name), a, b in zip(names, d, y):
        BENCH.figure(f"{key}.day", a * 1000, "ms", f"{name}, 1 day")
        BENCH.figure(f"{key}.year", b * 1000, "ms", f"{name}, {LONG}")
        BENCH.figure(f"{key}.year_over_day", b / a, "×", f"{name}, {LONG} / 1 day")
    BENCH.done()


if __name__ == "__main__":
    main()
