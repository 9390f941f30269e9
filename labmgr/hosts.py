"""The hypervisor's machine: here, or over SSH when the hypervisor is remote.

Whatever libvirt cannot do must happen where libvirt runs: network namespaces,
qemu-img, the files of snapshots, overlays and restore media. ``host_for(uri)``
gives a ``LocalHost`` for a local libvirt URI and a ``RemoteHost`` (fabric over
paramiko, host key checked, files by SFTP) for ``qemu+ssh://user@host/...``.
Both have the same small interface; paths on them are POSIX paths of that machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import BinaryIO

from .atomic import atomic_write

from .errors import LabmgrError
from .hostbase import Host, Result, check_tree
from .remote.uri import is_remote

__all__ = ["Host", "LocalHost", "Result", "check_tree", "host_for"]


class LocalHost:
    """The machine labmgr runs on (libvirt URIs without a host part)."""

    name = "localhost"
    remote = False

    def run(self, argv: list[str], *, check: bool = True, input: str | None = None) -> Result:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, input=input)
        except FileNotFoundError:
            raise LabmgrError(f"{argv[0]} is not installed on this machine") from None
        result = Result(done.returncode, done.stdout, done.stderr)
        if check and not result.ok:
            raise LabmgrError(f"{' '.join(argv)} failed: {(done.stderr.strip() or done.stdout.strip())[-300:]}")
        return result

    # files ------------------------------------------------------------------
    def put(self, local: Path, path: str | os.PathLike) -> None:
        """Place the local file ``local`` at ``path`` (a no-op when they are the same file)."""
        if Path(local).resolve() == Path(path).resolve():
            return
        with open(local, "rb") as source:
            atomic_write(path, source)

    def write_from(self, source: BinaryIO, path: str | os.PathLike) -> None:
        atomic_write(path, source)

    def open_read(self, path: str | os.PathLike) -> BinaryIO:
        return open(path, "rb")

    def copy(self, source: str | os.PathLike, target: str | os.PathLike) -> None:
        shutil.copyfile(source, target)

    def mkdir(self, path: str | os.PathLike) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def remove_tree(self, path: str | os.PathLike) -> None:
        shutil.rmtree(check_tree(path), ignore_errors=True)

    def remove_file(self, path: str | os.PathLike) -> None:
        Path(path).unlink(missing_ok=True)

    def rename(self, source: str | os.PathLike, target: str | os.PathLike) -> None:
        os.rename(source, target)

    def exists(self, path: str | os.PathLike) -> bool:
        return os.path.exists(path)

    def size(self, path: str | os.PathLike) -> int:
        return os.stat(path).st_size

    def chmod(self, path: str | os.PathLike, mode: int) -> None:
        os.chmod(path, mode)

    def make_traversable(self, path: str | os.PathLike) -> None:
        from .paths import make_traversable

        make_traversable(Path(path))

    def free_bytes(self, path: str | os.PathLike) -> int:
        """Free space for ``path`` (its nearest existing parent when it is not made yet)."""
        probe = Path(path)
        while not probe.exists():
            probe = probe.parent
        return shutil.disk_usage(probe).free

    def close(self) -> None:
        pass

    def __enter__(self) -> "LocalHost":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def host_for(uri: str) -> Host:
    """The host where the libvirt of ``uri`` runs (a RemoteHost is logged in already)."""
    if not is_remote(uri):
        return LocalHost()
    from .remote.host import RemoteHost

    return RemoteHost.for_uri(uri)
