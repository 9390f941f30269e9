"""Render the measured sections of docs/reliability.md from what the suite itself wrote.

    python tests/render_reliability.py            # after tests/test_faults.py, tests/test_fuzz.py, bench/soak.py
                                                  # (tests/test_pgbackrest.py adds a fault row too)

Reads ``$LABMGR_STATE_DIR/reliability/{faults.jsonl,fuzz.json,soak.json}`` and replaces the text
between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` in docs/reliability.md; the rest of the
document (what labmgr promises) is written by people.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from labmgr import paths  # noqa: E402

DOC = Path(__file__).parent.parent / "docs" / "reliability.md"
FAULT_TESTS = "tests/test_faults.py and tests/test_pgbackrest.py"      # the modules that write faults.jsonl


def faults_table(rows: list[dict]) -> str:
    lines = ["| # | fault | where injected | what was checked (from outside labmgr) | result | time |",
             "| ---: | --- | --- | --- | --- | ---: |"]
    for n, row in enumerate(rows, 1):
        lines.append(f"| {n} | {row['fault']} | {row['injected']} | {row['checked']} | {row['result']} "
                     f"| {row['seconds']:.1f} s |")
    total = sum(r["seconds"] for r in rows)
    passed = sum(r["result"] == "pass" for r in rows)
    lines.append("")
    lines.append(f"{passed} of {len(rows)} faults passed; {total:.0f} s of fault time in all.")
    return "\n".join(lines)


def fuzz_text(data: dict) -> str:
    lines = ["| loader | files | loaded | refused in one line |", "| --- | ---: | ---: | ---: |"]
    for loader, tally in data["loaders"].items():
        lines.append(f"| {loader} | {sum(tally.values())} | {tally.get('loads', 0)} | {tally.get('one line', 0)} |")
    lines.append("")
    lines.append(f"{data['files']} mutated files in {data['seconds']:.0f} s; tracebacks: {data['tracebacks']}.")
    return "\n".join(lines)


def soak_text(data: dict) -> str:
    keys = [("rss_mib", "labmgr memory (RSS, MiB)"), ("fds", "labmgr open file descriptors"),
            ("domains", "libvirt domains of the soak (production + lab)"), ("lab_snapshots", "snapshots of the lab VM"),
            ("lab_dir_mib", "lab directory (MiB)"), ("overlay_mib", "lab overlay allocated (MiB)")]
    lines = ["| figure | after cycle 1 | after the last | growth after cycle 2 (max) |",
             "| --- | ---: | ---: | ---: |"]
    for key, label in keys:
        first, last = data[f"{key}_first_last"]
        lines.append(f"| {label} | {first} | {last} | {data[f'{key}_after_cycle2_max_growth']} |")
    lines.append("")
    lines.append(f"{data['cycles']} restore cycles, each checked in the guest "
                 f"({'all correct' if data['all_correct'] else 'NOT all correct'}); median restore "
                 f"{data['restore_seconds_median']} s.")
    return "\n".join(lines)


def replace(doc: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), doc)


def main() -> int:
    folder = paths.state_dir() / "reliability"
    doc = DOC.read_text()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if (folder / "faults.jsonl").exists():
        newest: dict[tuple[str, str], dict] = {}       # a fault run again: its newest row
        for line in (folder / "faults.jsonl").read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                newest.pop((row["fault"], row["injected"]), None)
                newest[(row["fault"], row["injected"])] = row
        rows = list(newest.values())
        doc = replace(doc, "faults", f"Measured {stamp} by {FAULT_TESTS}.\n\n" + faults_table(rows))
    if (folder / "fuzz.json").exists():
        doc = replace(doc, "fuzz", fuzz_text(json.loads((folder / "fuzz.json").read_text())))
    if (folder / "soak.json").exists():
        doc = replace(doc, "soak", soak_text(json.loads((folder / "soak.json").read_text())))
    DOC.write_text(doc)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
