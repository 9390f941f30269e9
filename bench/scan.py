"""Benchmark of `labmgr dumps scan`: YARA rules over a day of dumps, printed as numbers measured in one run.

    .venv/bin/python bench/scan.py [--quick] [--record]

A synthetic day shaped like the demo's (24 hours; each hour a tar of PHP
session files and a SQL dump that grows through the day), stored plain and
age-encrypted, scanned with a small rule set: the first scan reads everything
(MB/s of plaintext), a second scan with the same rules reads nothing (the
catalog remembers each dump by its hash). --quick: 3 hours, small files.
Host only (no libvirt). Not a test: nothing fails on a number.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _common import Bench  # noqa: E402

import pyrage  # noqa: E402

from labmgr.dumps.scan import scan_dumps  # noqa: E402
from labmgr.dumps.store import store_for  # noqa: E402
from labmgr.spec.model import DumpSettings, DumpSource, Encryption, Environment, Network, Nic, Server  # noqa: E402

BENCH = Bench("scan", __doc__)
HOURS = 3 if BENCH.quick else 24
SESSIONS = 20 if BENCH.quick else 400            # session files per hour's tar
SESSION_BYTES = 2048
SQL_ROWS = 2000 if BENCH.quick else 60_000       # rows in the first hour's SQL dump; +2% an hour
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
RULES = """
rule ransom_note { strings: $a = "YOUR FILES ARE ENCRYPTED" nocase condition: $a }
rule webshell { strings: $a = "eval(base64_decode(" $b = /system\\(\\$_(GET|POST)\\[/ condition: any of them }
rule dropped_table { strings: $a = /DROP TABLE [a-z_]+;/ condition: $a }
"""


def environment(store: Path, recipients: list[str] | None, identity: Path | None) -> Environment:
    return Environment(
        name="bench-scan", networks=[Network(name="lan", cidr="10.0.0.0/24")],
        servers=[Server(name="app", hostname="app01.bench.test", domain="bench-app",
                        nics=[Nic(network="lan", ip="10.0.0.12", mac="52:54:00:00:00:0c")],
                        dumps=[DumpSource(name="sessions", kind="files", path="/var/lib/php/sessions"),
                               DumpSource(name="shop", kind="mariadb", database="shop")])],
        dumps=DumpSettings(store=store, encryption=Encryption(recipients=recipients, identity_file=identity)
                           if recipients else None))


def sessions_tar(hour: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for n in range(SESSIONS):
            body = (f'user|s:6:"user{n:02d}";cart|a:1:{{i:0;s:4:"h{hour}";}}'.encode() * 64)[:SESSION_BYTES]
            info = tarfile.TarInfo(f"./sess_{hour:02d}_{n:04d}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def sql_dump(hour: int) -> list[bytes]:
    rows = int(SQL_ROWS * (1 + 0.02 * hour))
    head = b"CREATE TABLE invoices (no int PRIMARY KEY, created_at datetime, customer text);\n"
    body = (f"INSERT INTO invoices VALUES ({n},'2026-01-01 {hour:02d}:00:00','customer {n % 977}');\n"
            for n in range(rows))
    return [head, *(line.encode() for line in body)]


def fill(env: Environment) -> int:
    to = env.dumps.encryption.recipients if env.dumps.encryption else None
    stored = 0
    with store_for(env) as store:
        for hour in range(HOURS):
            taken = T0 + timedelta(hours=hour)
            for source, kind, chunks in (("sessions", "files", [sessions_tar(hour)]),
                                         ("shop", "mariadb", sql_dump(hour))):
                stored += store.write("app", source, kind, taken, chunks, encrypt_to=to, collector="agent").size
    return stored


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    try:
        rules = work / "rules.yar"
        rules.write_text(RULES)
        identity = pyrage.x25519.Identity.generate()
        (work / "age.key").write_text(f"{identity}\n")
        for label, env in (("plain", environment(work / "plain", None, None)),
                           ("age", environment(work / "age", [str(identity.to_public())], work / "age.key"))):
            fill(env)
            started = time.perf_counter()
            first = scan_dumps(env, rules)
            wall = time.perf_counter() - started
            again_started = time.perf_counter()
            again = scan_dumps(env, rules)
            again_wall = time.perf_counter() - again_started
            assert again.scanned == 0 and not first.matched
            BENCH.figure(f"{label}.mb_per_s", first.bytes / 1e6 / wall, "MB/s",
                         f"scan throughput, {label} dumps (plaintext MB per wall second)")
            BENCH.figure(f"{label}.day_s", wall, "s", f"scan a day ({HOURS} h, {first.bytes / 1e6:.0f} MB), {label}")
            BENCH.figure(f"{label}.rescan_s", again_wall, "s", f"scan the same day again with the same rules, {label}")
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    BENCH.done()


if __name__ == "__main__":
    main()
