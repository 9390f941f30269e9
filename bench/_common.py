"""What every bench shares: --quick, its figures, and the record in docs/benchmarks.md.

A bench names each number it measures with a stable key and hands it over:

    from _common import Bench
    bench = Bench("clone")                # parses --quick and --record
    size = 4 if bench.quick else 256      # --quick: tiny sizes, one repeat
    bench.figure("small.clone", 11.3, "ms", "lab clone, 256 MiB of disk data")
    bench.done()                          # prints every figure, recorded next to now

`done()` prints one table: each figure's key, what it is, the value recorded
in docs/benchmarks.md and the value measured now. With `--record` it rewrites
the bench's block in docs/benchmarks.md (between `<!-- figures NAME -->` and
`<!-- /figures NAME -->`) with today's date and the commit. Nothing fails on
a number: tests/test_bench.py runs every bench with --quick and checks only
that it runs and prints every figure.
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
sys.path.insert(0, str(REPO))

# A recorded figure is a table row inside a figures block: | `key` | what | value | unit |
ROW = re.compile(r"^\|\s*`(?P<key>[\w.\-]+)`\s*\|(?P<label>[^|]*)\|\s*(?P<value>[-+0-9.,eE]+)\s*\|(?P<unit>[^|]*)\|\s*$")
TABLE_HEADER = "| key | figure | value | unit |\n| --- | --- | ---: | --- |"


@dataclass(frozen=True)
class Figure:
    key: str
    value: float
    unit: str
    label: str


def block_markers(name: str) -> tuple[str, str]:
    return f"<!-- figures {name} -->", f"<!-- /figures {name} -->"


def recorded(text: str | None = None) -> dict[str, float]:
    """Every figure recorded in docs/benchmarks.md, by key."""
    text = DOC.read_text() if text is None else text
    found = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("<!-- figures "):
            inside = True
        elif line.startswith("<!-- /figures "):
            inside = False
        elif inside and (match := ROW.match(line)):
            found[match["key"]] = float(match["value"].replace(",", ""))
    return found


def number(value: float) -> str:
    """Three significant digits or more, never in exponent form: 0.0123, 4.56, 11.3, 2003."""
    magnitude = abs(value)
    digits = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2 if magnitude >= 1 or magnitude == 0 \
        else 2 - math.floor(math.log10(magnitude))
    return f"{value:.{digits}f}"


def commit() -> str:
    """The short commit the working tree is at, with '+changes' when it has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "labmgr", "bench")
    return head + ("+changes" if dirty else "")


class Bench:
    def __init__(self, name: str, description: str | None = None, argv: list[str] | None = None) -> None:
        parser = argparse.ArgumentParser(prog=f"bench/{name}.py", description=description,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--quick", action="store_true",
                            help="tiny sizes, one repeat: shows the bench runs (what `make test` does)")
        parser.add_argument("--record", action="store_true",
                            help="write the figures measured now into docs/benchmarks.md, with date and commit")
        args = parser.parse_args(argv)
        if args.quick and args.record:
            parser.error("--quick figures are not comparable: they are never recorded")
        self.name, self.quick, self.record = name, args.quick, args.record
        self.measured_at = commit() if self.record else ""    # the code as it was when measuring began
        self.figures: list[Figure] = []
        self.notes: list[str] = []

    def repeat(self, full: int) -> int:
        """How many times to repeat a measurement: ``full``, or once with --quick."""
        return 1 if self.quick else full

    def figure(self, key: str, value: float, unit: str, label: str) -> float:
        self.figures.append(Figure(f"{self.name}.{key}", float(value), unit, label))
        return value

    def note(self, text: str) -> None:
        """A line printed under the table (not a figure: nothing to compare)."""
        self.notes.append(text)

    def done(self) -> None:
        before = recorded()
        print(f"\n{self.name}" + ("  (--quick: tiny sizes, one repeat; not comparable to the record)"
                                  if self.quick else ""))
        key_w = max(len(f.key) for f in self.figures)
        label_w = max(len(f.label) for f in self.figures)
        print(f"{'key':<{key_w}}  {'figure':<{label_w}}  {'recorded':>10}  {'now':>10}  unit")
        for f in self.figures:
            old = number(before[f.key]) if f.key in before else "-"
            print(f"{f.key:<{key_w}}  {f.label:<{label_w}}  {old:>10}  {number(f.value):>10}  {f.unit}")
        for text in self.notes:
            print(text)
        if self.record:
            write_block(self.name, self.figures, self.measured_at)
            print(f"recorded in {DOC.relative_to(REPO)}")
        sys.stdout.flush()


def render_block(name: str, figures: list[Figure], measured_on: str, at_commit: str) -> str:
    start, end = block_markers(name)
    rows = "\n".join(f"| `{f.key}` | {f.label} | {number(f.value)} | {f.unit} |" for f in figures)
    return (f"{start}\nMeasured {measured_on} at commit `{at_commit}` "
            f"(`bench/{name}.py --record`).\n\n{TABLE_HEADER}\n{rows}\n{end}")


def write_block(name: str, figures: list[Figure], at_commit: str) -> None:
    """Replace the bench's block in docs/benchmarks.md, or add it at the end under its own heading."""
    text = DOC.read_text()
    block = render_block(name, figures, datetime.now(timezone.utc).strftime("%Y-%m-%d"), at_commit)
    start, end = block_markers(name)
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## {name} (`bench/{name}.py`)\n\n{block}\n"
    DOC.write_text(text)


def remove_lab_and_production(hypervisor, lab: str, production) -> None:
    """A libvirt bench's end: its lab (already gone is not an error), then its production and the
    production's snapshots."""
    import shutil

    from labmgr.demo import production as prod
    from labmgr.lab.teardown import lab_down
    from labmgr.snapshot.store import environment_dir

    try:
        lab_down(lab, hypervisor_uri=production.uri)
    except Exception:
        pass
    prod.remove(hypervisor, production)
    shutil.rmtree(environment_dir(production.prefix), ignore_errors=True)
