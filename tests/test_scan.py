"""YARA rules over stored dumps: real yara-x, real tar streams, real age encryption, real SQLite.

Host-only (no libvirt): PostgreSQL custom-format dumps are covered by the VM
test (tests/test_hunt.py), which scans dumps collected from a real guest.
"""

from __future__ import annotations

import io
import os
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyrage
import pytest

from labmgr.dumps import DumpError, store_for
from labmgr.dumps.scan import OVERLAP, WINDOW, load_rules, scan_dumps
from labmgr.dumps.scans import ScanBook
from labmgr.spec.model import DumpSettings, DumpSource, Encryption, Environment, Network, Nic, Server

from helpers import labmgr, one_line_error

UTC = timezone.utc
T0 = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
MARKER = b"LMS-RANSOM-NOTE-7f3a"
RULES = """
rule ransom_note { strings: $a = "LMS-RANSOM-NOTE-7f3a" condition: $a }
rule dropped_table { strings: $a = "DROP TABLE invoices" condition: $a }
"""


def environment(store: Path, recipients: list[str] | None = None, identity: Path | None = None) -> Environment:
    return Environment(
        name="lms-scan", networks=[Network(name="lan", cidr="10.0.0.0/24")],
        servers=[Server(name="app", hostname="app01.shop.test", domain="lms-app",
                        nics=[Nic(network="lan", ip="10.0.0.12", mac="52:54:00:00:00:0c")],
                        dumps=[DumpSource(name="sessions", kind="files", path="/var/lib/php/sessions"),
                               DumpSource(name="crm", kind="mariadb", database="crm")])],
        dumps=DumpSettings(store=store, encryption=Encryption(recipients=recipients, identity_file=identity)
                           if recipients else None))


def tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def fill_day(env: Environment, bad_from: int, hours: int = 6) -> None:
    """Hourly dumps; from hour ``bad_from`` on one session file holds the marker."""
    to = env.dumps.encryption.recipients if env.dumps.encryption else None
    with store_for(env) as store:
        for hour in range(hours):
            sessions = {f"sess_{h}": b"user|s:5:\"alice\";" * 50 for h in range(hour + 1)}
            if hour >= bad_from:
                sessions[f"sess_{bad_from}"] += b"\n" + MARKER + b"\n"
            taken = T0 + timedelta(hours=hour)
            store.write("app", "sessions", "files", taken, [tar_of(sessions)], encrypt_to=to, collector="agent")
            store.write("app", "crm", "mariadb", taken, [f"INSERT INTO contacts VALUES ({hour});\n".encode() * 100],
                        encrypt_to=to, collector="agent")


@pytest.fixture
def rules(tmp_path) -> Path:
    path = tmp_path / "rules.yar"
    path.write_text(RULES)
    return path


def flagged(summary) -> list[tuple[int, str, list]]:
    return [(int((r.taken_at - T0).total_seconds() // 3600), f"{r.server}/{r.source}",
             [(f.rule, f.member) for f in s.findings]) for r, s in summary.matched]


def test_the_marker_flags_its_hour_and_later_with_member_paths(tmp_path, rules) -> None:
    env = environment(tmp_path / "store")
    fill_day(env, bad_from=3)
    summary = scan_dumps(env, rules)
    assert flagged(summary) == [(h, "app/sessions", [("ransom_note", "sess_3")]) for h in (3, 4, 5)]
    assert summary.scanned == 12 and summary.cached == 0 and summary.bytes > 0
    with store_for(env) as store:
        book = ScanBook(store.catalog.db)
        assert sorted(h.hour for h in book.flagged_hours(T0, T0 + timedelta(days=1))) == [3, 4, 5]
    # the same rules again: nothing is read again
    again = scan_dumps(env, rules)
    assert (again.scanned, again.cached, again.bytes) == (0, 12, 0)
    assert flagged(again) == flagged(summary)
    # other rules (a changed file): every dump is read again
    rules.write_text(RULES + "\nrule nothing { condition: false }\n")
    assert scan_dumps(env, rules).scanned == 12


def test_a_range_scans_only_its_dumps(tmp_path, rules) -> None:
    env = environment(tmp_path / "store")
    fill_day(env, bad_from=1)
    summary = scan_dumps(env, rules, since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=3))
    assert len(summary.results) == 4 and [h for h, _, _ in flagged(summary)] == [2, 3]


def test_encrypted_dumps_are_scanned_without_plaintext_on_disk(tmp_path, rules) -> None:
    identity = pyrage.x25519.Identity.generate()
    key = tmp_path / "age.key"
    key.write_text(f"{identity}\n")
    env = environment(tmp_path / "store", [str(identity.to_public())], key)
    fill_day(env, bad_from=4)
    before = {p for p in (tmp_path / "store").rglob("*")}
    summary = scan_dumps(env, rules)
    assert [h for h, _, _ in flagged(summary)] == [4, 5]
    after = {p for p in (tmp_path / "store").rglob("*")}
    assert after - before <= {tmp_path / "store" / n for n in ("catalog.sqlite-wal", "catalog.sqlite-shm")}
    for path in (tmp_path / "store").rglob("*.age"):
        assert MARKER not in path.read_bytes()
    # the wrong identity: one clear error naming the dump, nothing recorded as clean
    key.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    rules.write_text(RULES + "\n// changed\n")
    with pytest.raises(DumpError, match="cannot decrypt app/"):
        scan_dumps(env, rules)


def test_a_marker_across_two_windows_is_found(tmp_path, rules) -> None:
    env = environment(tmp_path / "store")
    big = b"x" * (WINDOW - len(MARKER) // 2) + MARKER + b"y" * 1000
    assert OVERLAP > len(MARKER)
    with store_for(env) as store:
        store.write("app", "crm", "mariadb", T0, [big], collector="agent")
    assert flagged(scan_dumps(env, rules)) == [(0, "app/crm", [("ransom_note", "dump.sql")])]


def test_bad_rules_and_the_command_line(tmp_path, rules) -> None:
    bad = tmp_path / "bad.yar"
    bad.write_text("rule broken { strings: $a = \"x\" condition: $b }\n")
    with pytest.raises(DumpError, match="bad.yar: not valid YARA rules"):
        load_rules(bad)
    env = environment(tmp_path / "store")
    fill_day(env, bad_from=5)
    spec = tmp_path / "lms-scan.yaml"
    import yaml
    spec.write_text(yaml.safe_dump(env.model_dump(mode="json", exclude_none=True), sort_keys=False))
    result = labmgr("dumps", "scan", str(spec), "--rules", str(rules), env={"LABMGR_STATE_DIR": str(tmp_path)})
    assert result.returncode == 1, result.stderr
    assert "ransom_note: sess_5" in result.stdout and "12 dumps: 1 matched, 11 clean" in result.stdout
    assert "MB/s" in result.stdout
    error = one_line_error(labmgr("dumps", "scan", str(spec), "--rules", str(bad)))
    assert "bad.yar" in error


def test_last_clean_is_the_newest_scanned_clean_hour_whose_probes_passed(tmp_path, rules) -> None:
    from labmgr.dumps.errors import DumpError as Error
    from labmgr.history import history_for
    from labmgr.lab.lastclean import last_clean_point, resolve_point
    from labmgr.timeparse import format_point

    env = environment(tmp_path / "store")
    fill_day(env, bad_from=3)
    with store_for(env) as store:
        with pytest.raises(Error, match="6 not scanned"):       # nothing scanned yet: nothing is known clean
            last_clean_point(env, store)
    scan_dumps(env, rules)
    with store_for(env) as store:
        assert resolve_point(env, store, " Last-Clean ") == T0 + timedelta(hours=2)
        with history_for(env) as history:       # the probes failed at 02:00: it is not clean
            history.record_probe_run("lab", env.name, format_point(T0 + timedelta(hours=2, minutes=30)),
                                     "s", "f", 1, [])
        assert last_clean_point(env, store) == T0 + timedelta(hours=1)
        with history_for(env) as history:       # probed again and passed: the newest run counts
            history.record_probe_run("lab", env.name, format_point(T0 + timedelta(hours=2)), "s", "f", 0, [])
        assert last_clean_point(env, store) == T0 + timedelta(hours=2)
        # a new hour not scanned yet does not count as clean
        store.write("app", "sessions", "files", T0 + timedelta(hours=6), [tar_of({"sess_x": b"x"})],
                    collector="agent")
        store.write("app", "crm", "mariadb", T0 + timedelta(hours=6), [b"new"], collector="agent")
        assert last_clean_point(env, store) == T0 + timedelta(hours=2)
