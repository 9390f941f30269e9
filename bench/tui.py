"""Benchmark of the TUI's timeline over a big catalog, printed as numbers measured in one run.

    .venv/bin/python bench/tui.py

The real TUI (CoreBackend, a real Catalog in a temp store) on a catalog of one
year of hourly dumps for 20 servers x 2 sources (350,400 rows), against the
same for one day: first paint (start to the grid drawn with data), a PageDown
from key to painted data (through Textual's test pilot, 40 presses), a jump to
the oldest hour, and the time to draw every visible line once. Medians of 3
runs. Not a test: nothing fails on a number (tests/test_tui_perf.py asserts
the limits).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from tui_year import first_paint, make_store  # noqa: E402

RUNS = 3


def measure(spec: Path) -> list[float]:
    runs = [asyncio.run(first_paint(spec)) for _ in range(RUNS)]
    return [statistics.median(r[i] for r in runs) for i in range(4)]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="labmgr-bench-tui-") as tmp:
        started = time.perf_counter()
        year = make_store(Path(tmp) / "year")
        print(f"fixture: 350,400 rows inserted in {time.perf_counter() - started:.1f} s")
        day = make_store(Path(tmp) / "day", hours=24)
        y, d = measure(year), measure(day)
    names = ("first paint", "PageDown, key to painted", "jump to the oldest hour", "draw the visible grid")
    print(f"{'measure':<28} {'1 day':>10} {'1 year':>10} {'year/day':>9}")
    for name, a, b in zip(names, d, y):
        print(f"{name:<28} {a * 1000:>8.1f}ms {b * 1000:>8.1f}ms {b / a:>8.2f}x")


if __name__ == "__main__":
    main()
