"""Scan results in the dump catalog's database: one row per (dump sha256, rules sha256).

Keyed by content hashes rather than catalog ids, so a dump deleted and imported
again, or a second store holding the same file, is not scanned twice with the
same rules. A dump is *clean* when it has been scanned and no scan found anything.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, NamedTuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS dump_scans (
    dump_sha256  TEXT    NOT NULL,
    rules_sha256 TEXT    NOT NULL,
    scanned_at   INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    seconds      REAL    NOT NULL,
    findings     TEXT    NOT NULL,          -- JSON [[rule, member], ...]; [] is clean
    PRIMARY KEY (dump_sha256, rules_sha256)
) WITHOUT ROWID;
"""


class Finding(NamedTuple):
    rule: str
    member: str


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.findings

    def describe(self) -> str:
        if self.clean:
            return "clean"
        by_rule: dict[str, list[str]] = {}
        for finding in self.findings:
            by_rule.setdefault(finding.rule, []).append(finding.member)
        return "; ".join(f"{rule}: {', '.join(members)}" for rule, members in sorted(by_rule.items()))


class ScanBook:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        with self.db:
            self.db.executescript(SCHEMA)

    def get(self, dump_sha256: str, rules_sha256: str) -> ScanResult | None:
        row = self.db.execute("SELECT findings, bytes, seconds FROM dump_scans "
                              "WHERE dump_sha256 = ? AND rules_sha256 = ?", (dump_sha256, rules_sha256)).fetchone()
        return _result(row) if row else None

    def put(self, dump_sha256: str, rules_sha256: str, result: ScanResult) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO dump_scans VALUES (?, ?, ?, ?, ?, ?)",
                            (dump_sha256, rules_sha256, int(datetime.now(timezone.utc).timestamp()),
                             result.bytes, result.seconds, json.dumps([list(f) for f in result.findings])))

    def verdicts(self, dump_sha256s: Iterable[str]) -> dict[str, ScanResult]:
        """Every scan of these dumps merged into one result each (any rules): absent when never scanned."""
        wanted = sorted(set(dump_sha256s))
        merged: dict[str, ScanResult] = {}
        for start in range(0, len(wanted), 500):          # SQLite's bound-parameter limit
            chunk = wanted[start:start + 500]
            rows = self.db.execute(f"SELECT dump_sha256, findings, bytes, seconds FROM dump_scans "
                                   f"WHERE dump_sha256 IN ({', '.join('?' * len(chunk))})", chunk)
            for sha, *row in rows:
                result = _result(row)
                known = merged.setdefault(sha, ScanResult(bytes=result.bytes, seconds=result.seconds))
                known.findings = sorted(set(known.findings) | set(result.findings))
        return merged

    def flagged_hours(self, since: datetime, until: datetime) -> set[datetime]:
        """Hours in [since, until) holding a dump some scan found something in (for the timeline)."""
        if self.db.execute("SELECT 1 FROM dump_scans WHERE findings != '[]' LIMIT 1").fetchone() is None:
            return set()            # the usual case: nothing ever matched, no join over the year's dumps
        rows = self.db.execute(
            "SELECT DISTINCT d.taken_at / 3600 FROM dumps d JOIN dump_scans s ON s.dump_sha256 = d.sha256 "
            "WHERE d.taken_at >= ? AND d.taken_at < ? AND s.findings != '[]'",
            (int(since.timestamp()), int(until.timestamp())))
        return {datetime.fromtimestamp(hour * 3600, timezone.utc) for (hour,) in rows}


def _result(row: tuple) -> ScanResult:
    findings, size, seconds = row
    return ScanResult([Finding(*f) for f in json.loads(findings)], size, seconds)
