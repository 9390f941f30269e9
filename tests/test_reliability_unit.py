"""The defects of issue 12 that need no libvirt: spec validation, atomic and locked writes,
liveness by lock, the journal of intents, staged plaintext's permissions, the TUI's uncancellable
revert (in test_tui.py). Each test here failed before its fix."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from labmgr.atomic import atomic_write
from labmgr.dumps.errors import DumpError
from labmgr.dumps.store import DumpStore
from labmgr.errors import SpecError
from labmgr.spec import load_environment

from test_spec import GOOD

pytestmark = pytest.mark.usefixtures("state")


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "state"
    monkeypatch.setenv("LABMGR_STATE_DIR", str(root))
    return root


def spec_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "env.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(SpecError) as caught:
        load_environment(path)
    assert "\n" not in str(caught.value)
    return str(caught.value)


DUMPS = "    nics:\n      - {network: lan, ip: 10.20.0.11, mac: \"52:54:00:AA:00:11\"}\n"


@pytest.mark.parametrize("source, words", [
    ("{name: inv, kind: postgres, database: '--help'}", "not a database name"),
    ("{name: inv, kind: mariadb, database: 'crm`; DROP DATABASE mysql; --'}", "not a database name"),
    ("{name: inv, kind: mariadb, database: 'a b'}", "not a database name"),
    ("{name: s, kind: files, path: '-rf'}", "not an absolute directory path"),
    ("{name: s, kind: files, path: 'var/lib/app'}", "not an absolute directory path"),
    ("{name: s, kind: files, path: '/var/../etc'}", "not an absolute directory path"),
    ("{name: s, kind: files, path: \"/var/lib/a\\nb\"}", "not an absolute directory path"),
])
def test_unsafe_database_and_path_are_one_line_naming_the_line(tmp_path, source, words) -> None:
    text = GOOD.replace(DUMPS, DUMPS + f"    dumps:\n      - {source}\n", 1)
    message = spec_error(tmp_path, text)
    assert "env.yaml:19:" in message and words in message, message


def test_safe_names_still_load(tmp_path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(GOOD.replace(DUMPS, DUMPS + "    dumps:\n      - {name: inv, kind: postgres, database: shop_2-x}\n"
                                 "      - {name: s, kind: files, path: /var/lib/app/sessions}\n", 1))
    assert load_environment(path).server("db").dumps[0].database == "shop_2-x"


def test_atomic_write_sets_the_mode_before_the_data_and_leaves_no_temp(tmp_path) -> None:
    target = atomic_write(tmp_path / "secret.json", "{}", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.json"]


def test_concurrent_record_saves_never_fail_or_tear(state) -> None:
    from labmgr.lab import records

    record = records.reserve("lmf-u", "lmf", hypervisor="qemu:///system", snapshot="s", spec="/x.yaml")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(40):
                record.timings[f"t{n}"] = i
                record.save()
        except BaseException as exc:       # the old fixed lab.tmp: FileNotFoundError in os.replace
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    record.release()
    assert errors == []
    assert json.loads((records.lab_dir("lmf-u") / "lab.json").read_text())["name"] == "lmf-u"
    assert [p.name for p in records.lab_dir("lmf-u").iterdir() if p.name.endswith(".tmp")] == []


HOLD_LOCK = """
import sys, time
from labmgr.lab import records
with records.lab_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_lab_up_is_judged_alive_by_its_lock_not_by_its_pid(state) -> None:
    from labmgr.lab import records

    record = records.reserve("lmf-p", "lmf", hypervisor="qemu:///system", snapshot="s", spec="/x.yaml")
    record.release()
    record.pid = 1                    # a live process, but not this lab's: a reused pid
    record.save()
    assert records.load("lmf-p").is_abandoned()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, "lmf-p"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not records.load("lmf-p").is_abandoned()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert records.load("lmf-p").is_abandoned()


def test_two_collections_of_one_second_never_share_a_partial_file(tmp_path) -> None:
    """A and B (same server, source and second) are both half-way; A finishes first: A's dump is
    A's bytes, B is refused in one line, no partial file is left. (With one fixed partial name, B
    replaced A's partial and A catalogued B's half-written bytes.)"""
    moment = datetime(2026, 11, 20, 7, 0, 0, tzinfo=timezone.utc)
    started = {n: threading.Event() for n in "AB"}
    go = {n: threading.Event() for n in "AB"}
    outcome: dict[str, object] = {}

    def chunks(name: str):
        yield name.encode() * 1000
        started[name].set()
        assert go[name].wait(30)
        yield name.encode() * 2000

    def collect(name: str) -> None:     # each collection has its own store object, as two processes
        store = DumpStore(tmp_path / "store")
        try:
            outcome[name] = store.write("db", "inv", "postgres", moment, chunks(name), collector="agent")
        except DumpError as exc:
            outcome[name] = exc
        finally:
            store.close()

    threads = {n: threading.Thread(target=collect, args=(n,)) for n in "AB"}
    for name in "AB":
        threads[name].start()
        assert started[name].wait(30)
    for name in "AB":
        go[name].set()
        threads[name].join(30)
    a = outcome["A"]
    assert not isinstance(a, Exception), a
    assert a.path.read_bytes() == b"A" * 3000
    assert isinstance(outcome["B"], DumpError) and "\n" not in str(outcome["B"])
    assert list(a.path.parent.glob(".*partial")) == []


KILLED_IN_INTENT = """
import os, signal, sys
from pathlib import Path
from labmgr.journal import intent
staged = Path(sys.argv[1])
with intent("files", paths=[str(staged)], what="staged plaintext"):
    staged.mkdir(mode=0o700)
    (staged / "dump.plain").write_text("secret")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_what_a_killed_process_staged_is_removed_by_the_next_command(state, tmp_path) -> None:
    from labmgr import journal
    from labmgr.recovery import recover

    staged = tmp_path / "staged"
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_INTENT, str(staged)])
    assert killed.returncode == -signal.SIGKILL and (staged / "dump.plain").exists()
    assert [e.kind for e in journal.abandoned()] == ["files"]
    done = recover()
    assert not staged.exists() and journal.abandoned() == []
    assert len(done) == 1 and "staged plaintext" in done[0]


def test_staged_plaintext_and_media_are_not_readable_by_others(state, tmp_path) -> None:
    import io

    from labmgr.dumps.media import MediaFile, build_iso
    from labmgr.lab import records
    from labmgr.lab.restore import _copy_hashing, _staging_dir

    record = records.reserve("lmf-s", "lmf", hypervisor="qemu:///system", snapshot="s", spec="/x.yaml")
    record.release()
    staging = _staging_dir(record)
    plain = staging / "plain" / "db-inv.plain"
    _copy_hashing(io.BytesIO(b"secret rows"), plain)
    iso = build_iso(staging / "db.iso", "LABMGR_T", [MediaFile("inv.dump", plain, "x", "postgres", "db/inv", "t")])
    mode = {p: stat.S_IMODE(p.stat().st_mode) for p in (staging, staging / "plain", plain, iso)}
    assert mode == {staging: 0o711, staging / "plain": 0o700, plain: 0o600, iso: 0o600}
    # inside the medium the dump is readable by every guest user: pg_restore runs as postgres
    import pycdlib
    medium = pycdlib.PyCdlib()
    medium.open(str(iso))
    try:
        record_in_iso = medium.get_record(rr_path="/inv.dump")
        assert stat.S_IMODE(record_in_iso.rock_ridge.get_file_mode()) == 0o444
    finally:
        medium.close()


def test_directories_qemu_can_already_enter_are_not_opened_to_everyone(tmp_path, monkeypatch) -> None:
    import grp

    from labmgr import paths

    kvm = grp.getgrnam("kvm").gr_gid
    outer = tmp_path / "outer"                     # not labmgr's: QEMU enters it through its group
    outer.mkdir(mode=0o750)
    os.chown(outer, -1, kvm)
    outer.chmod(0o750)
    state = outer / "state"
    monkeypatch.setenv("LABMGR_STATE_DIR", str(state))
    state.mkdir(mode=0o700)
    state.chmod(0o700)
    images = state / "images"
    images.mkdir(mode=0o700)
    images.chmod(0o700)
    paths.make_traversable(images)
    assert stat.S_IMODE(outer.stat().st_mode) == 0o750                 # left as it was
    for own in (state, images):                                       # labmgr's: its group, not everyone
        assert own.stat().st_gid == kvm and stat.S_IMODE(own.stat().st_mode) == 0o710


def test_a_libvirt_call_that_ends_in_a_system_error_is_one_hypervisor_error() -> None:
    """libvirt-python raised SystemError from a restore (several resumes at once): never a traceback."""
    from labmgr.errors import HypervisorError
    from labmgr.hypervisor.errors import translated

    with pytest.raises(HypervisorError) as caught:
        with translated("resuming domain 'x'"):
            try:
                raise RuntimeError("operation failed: job 'restore' failed\nsecond line")
            except RuntimeError as pending:
                raise SystemError("<built-in function virDomainRestoreFlags> returned a result with an "
                                  "exception set") from pending
    assert str(caught.value) == "resuming domain 'x': operation failed: job 'restore' failed"
