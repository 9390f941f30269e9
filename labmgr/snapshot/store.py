"""The snapshot store: ``<state>/snapshots/<environment>/<id>/``.

Each snapshot directory holds ``manifest.json`` and one folder per server with
its domain XML. Its disk images (self-contained qcow2, read-only) and any
kernel, initrd or NVRAM file its domain boots from are in hypervisor storage
(``labmgr/storage.py``) on production's hypervisor host, under the same relative
paths; for a local hypervisor that is this very directory. A snapshot copied to
another hypervisor for a lab lists that copy in ``copies``. A capture writes into
``.partial-<id>`` and renames only when complete, so a broken capture is never
listed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from .. import paths
from ..atomic import atomic_write
from ..errors import LabmgrError, NotFoundError, SnapshotError
from ..hostbase import Host


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
    agent: str = ""         # its guest agent: "exec", "no-exec" (guest-exec disabled), "none", "" unknown
    host_keys: list[str] = field(default_factory=list)       # SSH host keys, learned through the hypervisor


@dataclass
class Snapshot:
    id: str
    environment: str
    hypervisor: str
    taken_at: str
    seconds: float
    servers: dict[str, ServerCopy]
    path: Path = field(default=Path(), compare=False)
    storage: str = ""       # the images' directory on production's hypervisor host ("": ``path``)
    copies: dict[str, str] = field(default_factory=dict)    # other hypervisor URI -> its copy's directory

    def file(self, relative: str) -> Path:
        """A file of the local snapshot directory (for a local hypervisor: every file)."""
        return self.path / relative

    def locations(self) -> dict[str, str]:
        """Hypervisor URI -> the directory on its host that holds the images."""
        return {self.hypervisor: self.storage or str(self.path), **self.copies}

    def host_file(self, relative: str, uri: str | None = None) -> PurePosixPath:
        """A file in hypervisor storage, on the host of ``uri`` (default: production's)."""
        return PurePosixPath(self.locations()[uri or self.hypervisor]) / relative

    def host_files(self) -> list[str]:
        """What lives in hypervisor storage: disk images, kernels, initrds, NVRAM (relative paths)."""
        return ([d.image for s in self.servers.values() for d in s.disks]
                + [p for s in self.servers.values() for p in s.os_files.values()])

    def size(self) -> int:
        return sum(d.size for s in self.servers.values() for d in s.disks)

    def missing_files(self) -> list[Path]:
        """Local files (definitions) that are gone; ``missing_on`` checks the hypervisor's."""
        return [p for p in (self.file(s.xml) for s in self.servers.values()) if not p.is_file()]

    def missing_on(self, host: Host, uri: str) -> list[str]:
        return [str(self.host_file(r, uri)) for r in self.host_files() if not host.exists(self.host_file(r, uri))]

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("path")
        return json.dumps(data, indent=2)

    def save(self) -> None:
        """Rewrite the manifest atomically (a copy to another hypervisor was added)."""
        atomic_write(self.path / "manifest.json", self.to_json(), mode=0o444)

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
    _remove_images(snapshot)
    shutil.rmtree(snapshot.path)
    try:
        snapshot.path.parent.rmdir()     # the environment's last snapshot: no empty folder left
    except OSError:
        pass
    return snapshot


def _remove_images(snapshot: Snapshot) -> None:
    """Remove the images from every hypervisor that holds them, before the manifest that lists
    them: a host that cannot be reached leaves the snapshot listed, to delete again later."""
    from ..hosts import host_for

    for uri, directory in snapshot.locations().items():
        if directory == str(snapshot.path):
            continue                    # a local hypervisor: removed with the directory itself
        with host_for(uri) as host:
            host.remove_tree(directory)
            try:
                host.run(["rmdir", "--", str(PurePosixPath(directory).parent)], check=False)
            except LabmgrError:
                pass
