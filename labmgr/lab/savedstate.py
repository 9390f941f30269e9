"""Saved running states on the hypervisor's host: take one, resume one, under any domain name.

A saved point of a lab VM is a state file (``virsh save``: memory and devices),
the read-only disk layers the state expects (``<target>.<point>-<token>.qcow2``: the
VM's overlays at that moment) and, for a firmware-booted VM, a copy of its
NVRAM. Resuming puts a fresh overlay over each layer at the path the domain's
definition names and restores the state: no boot.

A state saved under another name (a snapshot's warm template) is resumed behind
a small per-lab header (``<point>.head``: the save header with the lab's own
definition, ``saveimage.py``) followed by the template's stream from
``offset``; both are fed through a FIFO to libvirt's restore, so a lab costs no
copy of the stream (measured against the alternatives: ``bench/instant.py``,
docs/architecture.md). Everything on the host goes through the host layer, so a
remote hypervisor keeps its states in its own storage.
"""

from __future__ import annotations

import base64
import secrets
import shlex
from dataclasses import asdict, dataclass, field, replace
from pathlib import PurePosixPath

from ..errors import LabError
from ..hypervisor import Domain, Hypervisor
from ..hypervisor.saveimage import HEADER_SIZE, SaveHeader, header_length, parse_header
from .labparts import make_overlay

FEED_TIMEOUT = 600      # a FIFO writer whose restore never came gives up (no process left behind)


@dataclass
class SavedPoint:
    state: str                                          # the state file on the hypervisor's host
    layers: dict[str, str] = field(default_factory=dict)   # disk target -> read-only layer
    header: str = ""        # a per-lab header to put in front of the state's stream ("" = none)
    offset: int = 0         # where the stream starts in ``state`` (with a header)
    nvram: str = ""         # the NVRAM as it was ("" = the VM has none)
    complete: bool = True   # False: planned, its save may not have finished (``finish_save``)
    sha256: str = ""        # of ``state``, for a point many labs resume (a template's): ``check_intact``

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SavedPoint":
        return cls(**{"complete": True, **data})

    def files(self) -> list[str]:
        return [p for p in (self.state if not self.header else "", self.header, self.nvram) if p]


def state_digest(host, state: str | PurePosixPath) -> str:
    """The sha256 of a state file, computed on the hypervisor's host."""
    result = host.run(["sha256sum", str(state)], check=False)
    if not result.ok or not result.stdout.strip():
        raise LabError(f"saved state {state} is unreadable: {result.stderr.strip() or 'empty'}",
                       hint="the template is remade by a cold boot")
    return result.stdout.split()[0]


def check_intact(host, saved: SavedPoint) -> None:
    """Refuse a state whose bytes changed since it was saved: QEMU loads damaged memory pages
    without a word, and the lab would look up while its guests are not what was saved."""
    if saved.sha256 and state_digest(host, saved.state) != saved.sha256:
        raise LabError(f"saved state {saved.state} is damaged (its sha256 changed since it was saved)",
                       hint="the template is remade by a cold boot")


def read_header(host, state: str | PurePosixPath) -> SaveHeader:
    """The header of a state file on the hypervisor's host (its first ~70 KB, never the stream)."""
    head = _head(host, state, HEADER_SIZE)
    return parse_header(_head(host, state, header_length(head)), f"saved state {state}")


def _head(host, path, size: int) -> bytes:
    result = host.run(["sh", "-c", f"head -c {int(size)} {q(path)} | base64 -w0"], check=False)
    if not result.ok or not result.stdout.strip():
        raise LabError(f"saved state {path} is unreadable: {result.stderr.strip() or 'empty'}",
                       hint="the template is remade by a cold boot")
    return base64.b64decode(result.stdout.strip())


def plan_point(folder: PurePosixPath, point: str, overlays: dict[str, str], nvram: str = "") -> SavedPoint:
    """Where a point's files will be (recorded before the save, so a save killed midway is found)."""
    # a layer of an earlier point of that name may still be under the overlay: never reuse a name
    return SavedPoint(state=str(folder / f"{point}.save"),
                      layers={t: str(folder / f"{t}.{point}-{secrets.token_hex(4)}.qcow2") for t in overlays},
                      nvram=str(folder / f"nvram.{point}") if nvram else "", complete=False)


def save_point(host, domain: Domain, folder: PurePosixPath, point: str, overlays: dict[str, str],
               nvram: str = "") -> SavedPoint:
    """Save the running VM into ``folder``, turn its overlays into the point's read-only layers and
    put fresh overlays at the old paths. The VM is stopped afterwards (resume it with ``resume``)."""
    return save_planned(host, domain, plan_point(folder, point, overlays, nvram), overlays, nvram)


def save_planned(host, domain: Domain, planned: SavedPoint, overlays: dict[str, str], nvram: str = "") -> SavedPoint:
    host.remove_file(planned.state)
    domain.save_state(planned.state)
    return finish_save(host, planned, overlays, nvram)


def finish_save(host, planned: SavedPoint, overlays: dict[str, str], nvram: str = "") -> SavedPoint:
    """Once the state is written (libvirt stops the VM only then): the overlays become the point's
    layers and the NVRAM is copied. Run again, it finishes a save whose maker was killed."""
    for target, overlay in overlays.items():
        layer = planned.layers[target]
        if host.exists(overlay) and not host.exists(layer):
            host.rename(overlay, layer)
        host.chmod(layer, 0o444)
    if nvram:
        host.copy(nvram, planned.nvram)
    return replace(planned, complete=True)


def write_header(host, saved: SavedPoint, header: SaveHeader, path: PurePosixPath) -> SavedPoint:
    """A per-lab header for a state saved under another name: ``header`` carries the lab's definition."""
    data = header.to_bytes()
    host.write_from(_Bytes(data), path)
    host.chmod(path, 0o600)
    return replace(saved, layers=dict(saved.layers), header=str(path), offset=header.stream_offset)


def resume(hypervisor: Hypervisor, host, saved: SavedPoint, name: str, overlays: dict[str, str],
           nvram: str = "") -> Domain:
    """Fresh overlays over the point's layers, the NVRAM put back, then the state resumed as ``name``."""
    for target, overlay in overlays.items():
        host.remove_file(overlay)
        make_overlay(host, PurePosixPath(saved.layers[target]), PurePosixPath(overlay))
    if nvram and saved.nvram:
        host.copy(saved.nvram, nvram)
        host.chmod(nvram, 0o644)
    if not saved.header:
        return hypervisor.restore_state(saved.state, name)
    fifo = PurePosixPath(saved.header).with_suffix(".fifo")
    # the writer runs on the hypervisor's host, detached; it ends when the restore has read it all
    # (the detached writer holds none of the command's own pipes, so the command returns at once)
    feed = f"cat {q(saved.header)} && tail -c +{saved.offset + 1} {q(saved.state)}"
    run(host, f"rm -f {q(fifo)} && mkfifo -m 600 {q(fifo)} && "
              f"(timeout {FEED_TIMEOUT} sh -c {q(feed)} > {q(fifo)} &) >/dev/null 2>&1 </dev/null")
    try:
        return hypervisor.restore_state(str(fifo), name)
    except BaseException:
        # unblock a writer still waiting for a reader, so no process is left behind
        run(host, f"timeout 5 cat {q(fifo)} > /dev/null 2>&1 || true")
        raise
    finally:
        host.remove_file(fifo)


def drop(host, saved: SavedPoint) -> None:
    """Remove a point's own files; its layers go when nothing stands on them (the caller sweeps)."""
    for path in saved.files():
        host.remove_file(path)


def backing_chain(host, image: str) -> list[str]:
    """Every layer under ``image`` (its backing files, nearest first)."""
    import json

    result = host.run(["qemu-img", "info", "-U", "--backing-chain", "--output=json", str(image)], check=False)
    if not result.ok:
        return []
    return [entry["filename"] for entry in json.loads(result.stdout)[1:]]


def run(host, script: str) -> None:
    result = host.run(["sh", "-c", script], check=False)
    if not result.ok:
        raise LabError(f"on {host.name}: {script.split(' ')[0]} failed: {result.stderr.strip()[-300:]}")


def q(path) -> str:
    return shlex.quote(str(path))


class _Bytes:
    """A tiny readable for ``host.write_from``."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.at + size
        chunk, self.at = self.data[self.at:end], min(end, len(self.data))
        return chunk
