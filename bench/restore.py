"""Benchmarks of point-in-time restore, printed as ratios measured in one run.

    make bench      (or: .venv/bin/python bench/restore.py [--quick] [--record])

1. A warm point-in-time switch (`lab restore` in a running lab: revert to the
   clean snapshot, inject, restore) against a cold `lab up` + restore.
2. How dumps reach a lab guest: a hot-plugged ISO read in the guest, against
   the guest agent's file writes (64 KiB chunks), against the guest reading a
   plain hot-plugged virtual disk.

It builds its own small production (one server of the test image, a `files`
dump source collected through the guest agent) and removes everything after.
--quick moves 1 MiB session files and 4 MiB media (the guests still boot).
Not a test: nothing fails on a number.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from _common import REPO, Bench, remove_lab_and_production  # puts the repository on sys.path

os.environ.setdefault("LABMGR_STATE_DIR", "/var/tmp/labmgr-test-state")
os.environ.setdefault("LABMGR_ACCEL", "tcg")

from labmgr.demo import production as prod  # noqa: E402
from labmgr.dumps.hourly import collect  # noqa: E402
from labmgr.dumps.media import MediaFile, build_iso  # noqa: E402
from labmgr.hypervisor import connect  # noqa: E402
from labmgr.image import build_image, load_recipe  # noqa: E402
from labmgr.lab.restore import lab_restore  # noqa: E402
from labmgr.lab.up import lab_up  # noqa: E402
from labmgr.snapshot import capture  # noqa: E402
from labmgr.spec import load_environment  # noqa: E402
from labmgr.timeparse import format_point  # noqa: E402
from labmgr.xml.builder import cdrom_xml, free_scsi_target  # noqa: E402

BENCH = Bench("restore", __doc__)
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SESSIONS = "/var/lib/app/sessions"
MEDIA_MIB = 4 if BENCH.quick else int(os.environ.get("BENCH_MEDIA_MIB", "128"))
AGENT_MIB = 1 if BENCH.quick else int(os.environ.get("BENCH_AGENT_MIB", "16"))
SESSION_BYTES = 10**6 if BENCH.quick else 20 * 10**6
LAB = "lmbench-lab"
NEEDS_LIBVIRT = True    # tests/test_bench.py marks its quick run libvirt


def main() -> None:
    image = build_image(load_recipe(REPO / "tests" / "images" / "base.yaml"))
    work = Path(tempfile.mkdtemp(prefix="bench-restore-", dir=os.environ["LABMGR_STATE_DIR"]))
    work.chmod(0o755)    # QEMU (libvirt-qemu) opens the media in it
    production = prod.Production(prefix="lmbench", network="10.83.0.0/24", gateway="10.83.0.1", servers=[
        prod.ProdServer("app", "app01.bench.test", "10.83.0.12", "52:54:00:83:00:12")])
    with connect(production.uri) as hypervisor:
        try:
            prod.create(hypervisor, production, image)
            spec = _spec(production, work)
            env = load_environment(spec)
            agent = hypervisor.domain(production.domain_name(production.servers[0])).agent(timeout=60)
            for hour in (1, 2):    # ~20 MB of session files per hour
                agent.run(["sh", "-c", f"mkdir -p {SESSIONS} && head -c {SESSION_BYTES} /dev/urandom "
                                       f"> {SESSIONS}/h{hour}"])
                assert not collect(env, taken_at=T0 + timedelta(hours=hour)).failed
            capture(env)

            started = time.monotonic()
            record = lab_up(env, spec, name=LAB)
            lab_restore(LAB, format_point(T0 + timedelta(hours=1, minutes=5)))
            cold = time.monotonic() - started
            started = time.monotonic()
            lab_restore(LAB, format_point(T0 + timedelta(hours=2, minutes=5)))
            warm = time.monotonic() - started

            domain = hypervisor.domain(record.servers["app"].domain)
            iso_rate, disk_rate, agent_rate = _transports(domain, work)
        finally:
            remove_lab_and_production(hypervisor, LAB, production)
            for path in sorted(work.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            work.rmdir()

    BENCH.figure("cold", cold, "s", "cold: lab up + lab restore")
    BENCH.figure("warm", warm, "s", "warm: lab restore in the running lab")
    BENCH.figure("cold_over_warm", cold / warm, "×", "cold / warm switch")
    BENCH.figure("iso", iso_rate, "MB/s", f"hot-plugged ISO, read in the guest ({MEDIA_MIB} MiB)")
    BENCH.figure("disk", disk_rate, "MB/s", f"hot-plugged plain disk, read in the guest ({MEDIA_MIB} MiB)")
    BENCH.figure("agent", agent_rate, "MB/s", f"guest agent file writes, 64 KiB chunks ({AGENT_MIB} MiB)")
    BENCH.figure("iso_over_agent", iso_rate / agent_rate, "×", "ISO / agent file writes")
    BENCH.figure("iso_over_disk", iso_rate / disk_rate, "×", "ISO / plain virtual disk")
    BENCH.done()


def _spec(production: prod.Production, work: Path) -> Path:
    spec = production.spec()
    spec["servers"][0]["dumps"] = [{"name": "sessions", "kind": "files", "path": SESSIONS, "via": "agent"}]
    spec["dumps"] = {"store": str(work / "store")}
    path = work / "lmbench.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _transports(domain, work: Path) -> tuple[float, float, float]:
    agent = domain.agent(timeout=120)
    payload = work / "payload"
    with payload.open("wb") as out:
        for _ in range(MEDIA_MIB):
            out.write(os.urandom(2**20))
    size = payload.stat().st_size
    iso = build_iso(work / "bench.iso", "LABMGR_BENCH", [MediaFile("payload", payload, "", "files", "bench", "")])
    payload.chmod(0o644)

    def read_in_guest(device_kind: str, file: Path, path_in_guest: str) -> float:
        device = cdrom_xml(file, free_scsi_target(domain.xml(inactive=False)), device=device_kind)
        domain.attach_device(device)
        try:
            dev = ""
            while not dev:
                listing = agent.run(["lsblk", "-dnpo", "NAME,SIZE,TYPE"])
                dev = next((line.split()[0] for line in listing.splitlines()
                            if line.split()[0].startswith(("/dev/sr", "/dev/sd"))), "")
                time.sleep(0.2)
            agent.run(["mkdir", "-p", "/run/bench"])
            if device_kind == "cdrom":
                agent.run(["mount", "-o", "ro", dev, "/run/bench"])
                target = f"/run/bench/{path_in_guest}"
            else:
                target = dev
            agent.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"])
            started = time.monotonic()
            agent.run(["sh", "-c", f"cat {target} > /dev/null"], timeout=600)
            seconds = time.monotonic() - started
            if device_kind == "cdrom":
                agent.run(["umount", "/run/bench"])
        finally:
            domain.detach_device(device)
        return size / seconds / 1e6

    iso_rate = read_in_guest("cdrom", iso, "payload")
    disk_rate = read_in_guest("disk", payload, "")
    chunk = payload.open("rb").read(AGENT_MIB * 2**20)
    started = time.monotonic()
    agent.write_file("/var/tmp/bench-agent", io.BytesIO(chunk))
    agent_rate = len(chunk) / (time.monotonic() - started) / 1e6
    return iso_rate, disk_rate, agent_rate


if __name__ == "__main__":
    main()
