"""Every bench in bench/ runs in its --quick mode and prints its figures table.

A change that breaks a benchmark fails here, not months later when someone
runs `make bench`. The numbers are not judged (timing thresholds stay out of
tests); what is checked: the bench exits 0, prints one row per figure, and
every figure's key has a value recorded in docs/benchmarks.md (a renamed or
new figure must be recorded: `bench/NAME.py --record`). A bench that needs
libvirt, QEMU or root services says `NEEDS_LIBVIRT = True`.

The libvirt benches' quick runs start together, two at a time, when the first of
them is tested (each has its own production, prefix and network; one TCG guest
keeps about one core busy, so two share the machine's two cores instead of
waiting in line). Only the benches whose tests were selected run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHES = sorted(p for p in (REPO / "bench").glob("*.py") if not p.name.startswith("_"))
sys.path.insert(0, str(REPO / "bench"))

from _common import recorded  # noqa: E402


PARALLEL = 2          # libvirt benches at once: the machine's two cores
# The order they start in, so the two lanes end together. Measured --quick seconds (2 at a time, 2 cores):
# bisection 161, instant 144, evidence 108, restore 100, soak 88. In this order one lane runs bisection
# then instant (305 s), the other evidence, restore, soak (296 s); in name order the module took 340 s.
# A bench not listed starts after these.
QUICK_ORDER = ("bisection", "evidence", "restore", "instant", "soak")


def needs_libvirt(path: Path) -> bool:
    return bool(re.search(r"^NEEDS_LIBVIRT = True\b", path.read_text(), re.M))


def bench_param(path: Path):
    return pytest.param(path, id=path.stem, marks=[pytest.mark.libvirt] if needs_libvirt(path) else [])


def quick_run(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(path), "--quick"], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=1200)


@pytest.fixture(scope="module")
def libvirt_runs(request):
    """The quick runs of the selected libvirt benches, started together (PARALLEL at a time)."""
    selected = [item.callspec.params["path"] for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")]
    selected.sort(key=lambda path: (QUICK_ORDER.index(path.stem) if path.stem in QUICK_ORDER else len(QUICK_ORDER),
                                    path.stem))
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        runs: dict[Path, Future] = {path: pool.submit(quick_run, path) for path in selected if needs_libvirt(path)}
        yield runs


def printed_figures(stdout: str, name: str) -> list[str]:
    """The keys of the figures table `_common.Bench.done` prints."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if re.match(r"^key\s+figure\s+recorded\s+now\s+unit$", line))
    return [line.split()[0] for line in lines[header + 1:] if line.startswith(f"{name}.")]


@pytest.mark.parametrize("path", [bench_param(p) for p in BENCHES])
def test_bench_quick_mode_runs_and_prints_its_figures(path: Path, request):
    done = (request.getfixturevalue("libvirt_runs")[path].result() if needs_libvirt(path)
            else quick_run(path))
    assert done.returncode == 0, f"{path.name} --quick failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    keys = printed_figures(done.stdout, path.stem)
    assert keys, f"{path.name} printed no figures:\n{done.stdout}"
    known = recorded()
    missing = [key for key in keys if key not in known]
    assert not missing, f"not recorded in docs/benchmarks.md (run bench/{path.name} --record): {missing}"


def test_the_record_says_when_and_at_which_commit_each_bench_was_measured():
    text = (REPO / "docs" / "benchmarks.md").read_text()
    for path in BENCHES:
        block = re.search(rf"<!-- figures {path.stem} -->\n(.*?)<!-- /figures {path.stem} -->", text, re.S)
        assert block, f"docs/benchmarks.md has no figures block for bench/{path.name}"
        assert re.match(r"Measured \d{4}-\d\d-\d\d at commit `[0-9a-f]{7,}", block[1]), block[1][:200]


def test_a_recorded_block_reads_back_as_written():
    from _common import Figure, render_block
    figures = [Figure("demo.small", 11.3, "ms", "lab clone, 256 MiB"), Figure("demo.ratio", 0.0123, "×", "a / b"),
               Figure("demo.big", 350400, "rows", "rows inserted")]
    text = "prose | `not.a.figure` | x | 1 | ms |\n" + render_block("demo", figures, "2026-11-28", "50c802c")
    assert recorded(text) == {"demo.small": 11.3, "demo.ratio": 0.0123, "demo.big": 350400.0}
