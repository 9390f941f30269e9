"""A team's restic repository as a files source: its snapshots are points in time, a lab is restored
to two of them from the real repository (read with --no-lock, never written), the guest's files are
exactly each snapshot's, probes pass, and a wrong password leaves the lab where it was."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from labmgr.lab import records
from labmgr.timeparse import format_point

from backups import directory_fingerprint
from helpers import APP_DATA, fresh_db_production, lab_of_spec, labmgr, one_line_error
from resticrepo import ResticRepo, file_sums, password_file

pytestmark = pytest.mark.libvirt
ENV, LAB = "lmk-rst", "lmk-r"
T0 = datetime(2026, 11, 22, 6, 0, tzinfo=timezone.utc)
UPLOADS = f"{APP_DATA}/uploads"        # where the lab guest gets the snapshot's files
LOGO = b"\x89PNG logo that never changes\n" * 100


def uploads_at(hour: int) -> dict[str, bytes]:
    """The team's uploads folder at ``hour``: files added, one changed every hour, one deleted after hour 1."""
    files = {"logo.png": LOGO, "index.txt": f"hour {hour}\n".encode(),
             **{f"2026/11/invoice-{h}.pdf": f"invoice {h}\n".encode() * 500 for h in range(1, hour + 1)}}
    if hour == 1:
        files["draft.txt"] = b"a draft, deleted before hour 2\n"
    return files


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """The team's restic repository: three hourly snapshots of their uploads folder (its content changing),
    and one of another folder in the same repository, which is no point of this source."""
    root = tmp_path_factory.mktemp("team")
    folder, other = root / "srv" / "uploads", root / "srv" / "other"
    other.mkdir(parents=True)
    (other / "x").write_text("not uploads\n")
    repo = ResticRepo(str(root / "repo"), password_file(root)).init()
    expected = {}
    for hour in (1, 2, 3):
        shutil.rmtree(folder, ignore_errors=True)
        for name, data in uploads_at(hour).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        repo.backup(folder, T0 + timedelta(hours=hour))
        expected[hour] = file_sums(folder)
    repo.backup(other, T0 + timedelta(hours=1, minutes=30))
    return {"repo": repo, "root": root, "folder": folder, "expected": expected}


@pytest.fixture(scope="module")
def lab(hypervisor, db_production, tmp_path_factory, team):
    agent, spec = fresh_db_production(hypervisor, db_production, ENV)
    agent.run(["mkdir", "-p", UPLOADS])
    spec["servers"][0]["dumps"] = [{"name": "uploads", "kind": "files", "path": UPLOADS, "via": "agent", "backup": {
        "directory": team["repo"].repository,
        "restic": {"password_file": str(team["repo"].password_file), "path": str(team["folder"])}}}]
    spec["dumps"] = {"store": str(tmp_path_factory.mktemp("store"))}
    with lab_of_spec(spec, tmp_path_factory.mktemp("spec"), LAB) as (path, record):
        yield path, hypervisor.domain(record.servers["db"].domain).agent(timeout=60)


def at(hour: int) -> str:
    return format_point(T0 + timedelta(hours=hour, minutes=30))


def guest_sums(agent) -> dict[str, str]:
    listing = agent.run(["sh", "-c", f"cd {UPLOADS} && find . -type f -exec sha256sum {{}} +"])
    return {name.removeprefix("./"): digest for digest, name in (line.split(None, 1) for line in listing.splitlines())}


def restore_to(path, agent, team, hour: int) -> None:
    result = labmgr("lab", "restore", LAB, "--at", at(hour))
    assert result.returncode == 0, result.stderr
    assert guest_sums(agent) == team["expected"][hour]


def test_snapshots_are_points_a_lab_is_restored_to_exactly_and_the_repository_is_untouched(lab, team, tmp_path):
    path, agent = lab
    before = directory_fingerprint(team["root"] / "repo")
    indexed = labmgr("dumps", "index", str(path))
    assert indexed.returncode == 0, indexed.stderr
    # the other folder's snapshot is no point of uploads ('N new': whether the other test indexed first)
    assert "3 backups, " in indexed.stdout, indexed.stdout
    listed = yaml.safe_load(labmgr("dumps", "list", str(path), "--json").stdout)
    snapshots = {s["time"][:19]: s["id"] for s in team["repo"].snapshots()}
    assert sorted((d["taken_at"], d["origin"]) for d in listed) == [
        ((T0 + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ"),
         f"{team['root']}/repo/snapshots/{snapshots[(T0 + timedelta(hours=h)).strftime('%Y-%m-%dT%H:%M:%S')]}")
        for h in (1, 2, 3)]
    for hour in (1, 3):
        restore_to(path, agent, team, hour)
    assert records.load(LAB).point["dumps"]["db/uploads"] == format_point(T0 + timedelta(hours=3))
    probes = tmp_path / "probes.yaml"
    probes.write_text(yaml.safe_dump({"probes": [
        {"name": "logo", "kind": "checksum", "server": "db",
         "manifest": {f"{UPLOADS}/logo.png": team["expected"][3]["logo.png"]}},
        {"name": "third-invoice", "kind": "command", "server": "db",
         "command": ["test", "-s", f"{UPLOADS}/2026/11/invoice-3.pdf"]}]}))
    probed = labmgr("probe", LAB, "--probes", str(probes))
    assert probed.returncode == 0, probed.stdout + probed.stderr
    assert directory_fingerprint(team["root"] / "repo") == before       # not a byte, not a lock file


def test_a_wrong_password_is_one_line_and_the_lab_stays_where_it_was(lab, team):
    path, agent = lab
    assert labmgr("dumps", "index", str(path)).returncode == 0
    restore_to(path, agent, team, 2)
    good = path.read_text()
    wrong = password_file(team["root"], "not the password")
    path.write_text(good.replace(str(team["repo"].password_file), str(wrong)))
    try:
        line = one_line_error(labmgr("lab", "restore", LAB, "--at", at(3)))
        assert "snapshot" in line and "wrong password" in line, line
        assert "wrong password" in one_line_error(labmgr("dumps", "index", str(path)))
    finally:
        path.write_text(good)
    assert guest_sums(agent) == team["expected"][2]
    assert records.load(LAB).point["dumps"]["db/uploads"] == format_point(T0 + timedelta(hours=2))
