"""The snapshot store: ``<state>/snapshots/<environment>/<id>/``.

Each snapshot directory holds ``manifest.json`` and one folder per server with
its domain XML, its disk images (self-contained qcow2, read-only) and any
kernel, initrd or NVRAM file its domain boots from. A capture writes into
``.partial-<id>`` and renames only when complete, so a broken capture is never
listed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import paths
from ..errors import NotFoundError, SnapshotError


@dataclass
class DiskCopy:
    target: str
    image: str          # relative to the snapshot directory
    size: int = 0


@dataclass
class ServerCopy:
    domain: str
    state: str          # production's state when captured
    method: str         # "backup" (running, libvirt backup API) or "copy" (shut off)
    frozen: bool        # filesystems frozen through the guest agent during the copy
    xml: str            # relative path of production's domain XML
    disks: list[DiskCopy] = field(default_factory=list)
    os_files: dict[str, str] = field(default_factory=dict)   # kernel/initrd/nvram -> relative path


@dataclass
class Snapshot:
    id: str
    environment: str
    hypervisor: str
    taken_at: str
    seconds: float
    servers: dict[str, ServerCopy]
    path: Path = field(default=Path(), compare=False)

    def file(self, relative: str) -> Path:
        return self.path / relative

    def size(self) -> int:
        return sum(d.size for s in self.servers.values() for d in s.disks)

    def missing_files(self) -> list[Path]:
        wanted = [self.file(s.xml) for s in self.servers.values()]
        wanted += [self.file(d.image) for s in self.servers.values() for d in s.disks]
        wanted += [self.file(p) for s in self.servers.values() for p in s.os_files.values()]
        return [p for p in wanted if not p.is_file()]

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("path")
        return json.dumps(data, indent=2)

    @classmethod
    def from_dir(cls, directory: Path) -> "Snapshot":
        try:
            data = json.loads((directory / "manifest.json").read_text())
            servers = {
                name: ServerCopy(**{**s, "disks": [DiskCopy(**d) for d in s["disks"]]})
                for name, s in data.pop("servers").items()
            }
            return cls(**data, servers=servers, path=directory)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise SnapshotError(f"snapshot {directory} is unreadable: {exc}",
                                hint="remove the directory; it cannot be used") from None


def environment_dir(environment: str) -> Path:
    return paths.snapshots_dir() / environment


def list_snapshots(environment: str) -> list[Snapshot]:
    """Complete snapshots of ``environment``, oldest first."""
    root = environment_dir(environment)
    if not root.is_dir():
        return []
    found = [Snapshot.from_dir(d) for d in sorted(root.iterdir())
             if d.is_dir() and not d.name.startswith(".") and (d / "manifest.json").is_file()]
    return sorted(found, key=lambda s: s.id)


def find_snapshot(environment: str, snapshot_id: str | None = None) -> Snapshot:
    """The snapshot ``snapshot_id`` of ``environment``, or its newest one."""
    snapshots = list_snapshots(environment)
    if not snapshots:
        raise NotFoundError(f"environment {environment} has no snapshot",
                            hint="take one with 'labmgr snapshot capture ENV.yaml'")
    if snapshot_id is None:
        return snapshots[-1]
    for snapshot in snapshots:
        if snapshot.id == snapshot_id:
            return snapshot
    known = ", ".join(s.id for s in snapshots[-5:])
    raise NotFoundError(f"environment {environment} has no snapshot '{snapshot_id}' (newest: {known})")


def remove_partial(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def delete_snapshot(environment: str, snapshot_id: str) -> Snapshot:
    """Remove a snapshot; refused while a lab is cloned from it (its overlays need it)."""
    from ..lab import records

    snapshot = find_snapshot(environment, snapshot_id)
    users = [r.name for r in records.all_records()
             if r.environment == environment and r.snapshot == snapshot.id]
    if users:
        raise SnapshotError(f"snapshot {snapshot.id} is in use by lab {', '.join(users)}",
                            hint=f"'labmgr lab down {users[0]}' first")
    shutil.rmtree(snapshot.path)
    try:
        snapshot.path.parent.rmdir()     # the environment's last snapshot: no empty folder left
    except OSError:
        pass
    return snapshot
