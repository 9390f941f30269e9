"""Benchmarks of the foundation, printed as ratios measured in one run.

    make bench      (or: .venv/bin/python bench/clone.py [--quick] [--record])

Lab clone (the clone stage of `lab up` for one disk: a qcow2 overlay over the
snapshot's image plus the derived domain XML) against a full copy of the same
disk (`qemu-img convert`), at one disk size and at ten times that size.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import Bench  # puts the repository on sys.path

from labmgr.hosts import LocalHost  # noqa: E402
from labmgr.lab.clone import CloneInputs, derive_lab_domain  # noqa: E402
from labmgr.lab.labparts import make_overlay  # noqa: E402
from labmgr.spec.model import Nic, Server  # noqa: E402

PRODUCTION_XML = (Path(__file__).parent.parent / "tests" / "data" / "production-domain.xml").read_text()
SERVER = Server(name="db", hostname="db01", domain="shop-db01", nics=[
    Nic(network="lan", ip="10.20.0.11", mac="52:54:00:aa:00:11"),
    Nic(network="san", ip="10.40.0.11", mac="52:54:00:bb:00:11")])
BASE_MIB = int(os.environ.get("BENCH_BASE_MIB", "256"))
QUICK_MIB = 4
NEEDS_LIBVIRT = True    # tests/test_bench.py marks its quick run libvirt
HOST = LocalHost()


def make_disk(path: Path, mib: int) -> None:
    """A qcow2 whose every MiB holds data (so a copy really copies it)."""
    raw = path.with_suffix(".raw")
    block = os.urandom(2**20)
    with raw.open("wb") as out:
        for _ in range(mib):
            out.write(block)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    raw.unlink()


def clone_once(disk: Path, workdir: Path) -> float:
    overlay = workdir / "vda.qcow2"
    started = time.perf_counter()
    make_overlay(HOST, disk, overlay)
    derive_lab_domain(PRODUCTION_XML, CloneInputs(
        lab="bench", environment="bench", snapshot="s", server=SERVER, domain_name="bench-db",
        virt_type="qemu", overlays={"vda": overlay, "vdb": overlay},
        os_files={"loader": workdir / "loader", "nvram": workdir / "nvram"},     # the lab's own, as lab up gives
        networks={"lan": "bench-lan", "san": "bench-san"}, directory=workdir))
    elapsed = time.perf_counter() - started
    overlay.unlink()
    return elapsed


def copy_once(disk: Path, workdir: Path) -> float:
    target = workdir / "copy.qcow2"
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(disk), str(target)], check=True)
    subprocess.run(["sync", "-f", str(target)], check=True)
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def main() -> None:
    bench = Bench("clone", __doc__)
    base = QUICK_MIB if bench.quick else BASE_MIB
    root = Path(os.environ.get("LABMGR_STATE_DIR", "/var/tmp/labmgr-test-state"))
    root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-", dir=root))
    try:
        rows = []
        for mib in (base, base * 10):
            disk = workdir / f"disk-{mib}.qcow2"
            make_disk(disk, mib)
            clone = statistics.median(clone_once(disk, workdir) for _ in range(bench.repeat(9)))
            copy = statistics.median(copy_once(disk, workdir) for _ in range(bench.repeat(3)))
            rows.append((mib, clone, copy))
            disk.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for size, (mib, clone, copy) in zip(("small", "large"), rows):
        bench.figure(f"{size}.clone", clone * 1000, "ms", f"lab clone, {mib} MiB of disk data")
        bench.figure(f"{size}.copy", copy * 1000, "ms", f"full copy, {mib} MiB of disk data")
        bench.figure(f"{size}.copy_over_clone", copy / clone, "×", f"full copy / lab clone, {mib} MiB")
    (_, clone1, copy1), (_, clone10, copy10) = rows
    bench.figure("growth.clone", clone10 / clone1, "×", "lab clone time when the disk grows 10×")
    bench.figure("growth.copy", copy10 / copy1, "×", "full copy time when the disk grows 10×")
    bench.done()


if __name__ == "__main__":
    main()
