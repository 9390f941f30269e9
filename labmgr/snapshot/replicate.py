"""A snapshot's images on another hypervisor, for a lab placed there.

A lab's overlays must be on the same host as the images they are backed by. When
``lab up`` places a lab on a hypervisor that has no copy of the snapshot, its
images are streamed there (through this machine: the hypervisors need no SSH
access to each other) and the copy is listed in the manifest, so later labs reuse
it and ``snapshot delete`` removes it. Storage shared between hypervisors is
recognised and not copied.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from filelock import FileLock

from ..hostbase import Host
from ..hosts import host_for
from ..progress import SILENT, Reporter
from ..storage import snapshot_dir
from .store import Snapshot


def has_copy(host: Host, snapshot: Snapshot, root: PurePosixPath) -> bool:
    """The images are on ``host`` already, under ``root`` (shared storage, or copied before)."""
    directory = snapshot_dir(root, snapshot.environment, snapshot.id)
    sizes = {d.image: d.size for s in snapshot.servers.values() for d in s.disks}
    for relative in snapshot.host_files():
        path = directory / relative
        if not host.exists(path) or (relative in sizes and host.size(path) != sizes[relative]):
            return False
    return True


def ensure_copy(snapshot: Snapshot, uri: str, host: Host, root: PurePosixPath, reporter: Reporter = SILENT) -> Snapshot:
    """The snapshot, with a copy of its images on the host of ``uri`` (made if needed)."""
    if uri in snapshot.locations():
        return snapshot
    with FileLock(str(snapshot.path / ".copy.lock")):       # two lab ups copying the same snapshot
        snapshot = Snapshot.from_dir(snapshot.path)
        if uri in snapshot.locations():
            return snapshot
        target = snapshot_dir(root, snapshot.environment, snapshot.id)
        if not has_copy(host, snapshot, root):
            _copy(snapshot, host, target, reporter)
        snapshot.copies[uri] = str(target)
        snapshot.save()
    return snapshot


def _copy(snapshot: Snapshot, host: Host, target: PurePosixPath, reporter: Reporter) -> None:
    partial = target.with_name(f".partial-{snapshot.id}")
    files = snapshot.host_files()
    with host_for(snapshot.hypervisor) as source, \
            reporter.step(f"copy snapshot {snapshot.id} to {host.name}", total=snapshot.size() or None) as step:
        host.remove_tree(partial)       # a copy interrupted before
        try:
            for relative in files:
                host.mkdir((partial / relative).parent)
                with source.open_read(snapshot.host_file(relative)) as reader:
                    host.write_from(_Counting(reader, step), partial / relative)
                host.chmod(partial / relative, 0o444)
            host.rename(partial, target)
        except BaseException:
            host.remove_tree(partial)
            raise
    host.make_traversable(target)


class _Counting:
    """A reader that advances the progress step by what was read."""

    def __init__(self, reader, step) -> None:
        self.reader, self.step = reader, step

    def read(self, size: int = -1) -> bytes:
        data = self.reader.read(size)
        self.step.advance(len(data))
        return data
