"""A stand-in for bench/_common.Bench (same calls) until that helper is merged: --quick, figures, a table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Bench:
    def __init__(self, name: str, description: str | None = None) -> None:
        parser = argparse.ArgumentParser(prog=f"bench/{name}.py", description=description,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat")
        parser.add_argument("--record", action="store_true", help="(needs bench/_common.py)")
        args = parser.parse_args()
        self.name, self.quick, self.figures, self.notes = name, args.quick, [], []

    def repeat(self, full: int) -> int:
        return 1 if self.quick else full

    def figure(self, key: str, value: float, unit: str, label: str) -> float:
        self.figures.append((f"{self.name}.{key}", value, unit, label))
        return value

    def note(self, text: str) -> None:
        self.notes.append(text)

    def done(self) -> None:
        for key, value, unit, label in self.figures:
            print(f"{key:<28} {label:<70} {value:>10.2f} {unit}")
        for text in self.notes:
            print(text)
