"""The small core pieces the TUI needs: lease extension, per-server stage reports, the catalog's span."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from labmgr.dumps.catalog import Catalog
from labmgr.dumps.record import DumpRecord
from labmgr.errors import LabError, NotFoundError
from labmgr.lab import records
from labmgr.lab.lease import extend_lease, lease_hours
from labmgr.progress import SILENT, stage

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("LABMGR_STATE_DIR", str(tmp_path))
    return tmp_path


def test_a_lease_grows_from_its_end_or_from_now(state) -> None:
    records.reserve("lmt-lease", "shop", hypervisor="qemu:///system", snapshot="s", spec="/x.yaml")
    assert extend_lease("lmt-lease", 8, now=NOW).lease_until == "2026-11-21T17:30:00Z"
    # a running lease is extended from its end
    assert extend_lease("lmt-lease", 24, now=NOW).lease_until == "2026-11-22T17:30:00Z"
    assert records.load("lmt-lease").lease_until == "2026-11-22T17:30:00Z"
    # an ended lease starts again from now
    later = NOW + timedelta(days=3)
    assert extend_lease("lmt-lease", 1, now=later).lease_until == "2026-11-24T10:30:00Z"
    with pytest.raises(LabError):
        extend_lease("lmt-lease", 0)
    with pytest.raises(NotFoundError):
        extend_lease("lmt-no-such-lab", 8)


def test_lease_texts() -> None:
    assert lease_hours("8h") == 8 and lease_hours(" 2d ") == 48
    for bad in ("", "0h", "8", "eight hours", "3w"):
        with pytest.raises(LabError):
            lease_hours(bad)


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def stage(self, subject: str, name: str, state: str) -> None:
        self.events.append((subject, name, state))


def test_stages_reach_reporters_that_want_them() -> None:
    seen = Seen()
    with stage(seen, "db", "revert"):
        pass
    with pytest.raises(RuntimeError):
        with stage(seen, "db", "media"):
            raise RuntimeError("unplugged")
    assert seen.events == [("db", "revert", "start"), ("db", "revert", "done"),
                           ("db", "media", "start"), ("db", "media", "failed")]
    with stage(SILENT, "db", "revert"):      # a reporter without stage() is left alone
        pass


def test_the_catalog_span(tmp_path) -> None:
    with Catalog(tmp_path) as catalog:
        assert catalog.span() == (None, None)
        for hours in (0, 5, 30):
            taken = NOW - timedelta(hours=hours)
            catalog.add(DumpRecord(None, "db", "invoices", "postgres", taken, 1, "0" * 64, None, False,
                                   tmp_path / f"{hours}.dump", collector="agent"))
        assert catalog.span() == (NOW, NOW - timedelta(hours=30))
