"""A restic repository as a backup location, read-only: its snapshots are the points in time.

Only two restic commands run, both with ``--no-lock`` (restic writes no lock file
into the repository) and ``--no-cache`` (nothing written on this host either):
``restic snapshots --json`` lists the points, ``restic dump SNAPSHOT PATH`` streams
a tar of the backed-up directory. Its members carry the backed-up path
(``srv/uploads/a.txt``); they are renamed on the way (``./a.txt``) so the tar is
the one a collected ``files`` dump holds and restores the same way. The
repository is the location's directory, or its bucket and prefix through
restic's own s3 backend with the location's keys; its password comes from a file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterator

from ..dumps.errors import DumpError
from ..dumps.streams import BLOCK, pumped
from ..spec.backups import BackupSource
from .locations import S3, Bucket, Directory, Found, credentials

SNAPSHOTS = "snapshots/"       # a point's name: the repository file that holds the snapshot
CHECKSUM = "restic:"           # a point's checksum: its snapshot id


class ResticRepository:
    """The snapshots of one restic repository that hold the backup source's path."""

    sizes_known = False         # restic 0.14 writes no size into a snapshot; 0 means "not known"

    def __init__(self, backup: BackupSource) -> None:
        self.backup, self.settings = backup, backup.restic
        if backup.directory is not None:
            self.repository = str(backup.directory)
        else:
            access = backup.s3
            endpoint = (access.endpoint or "https://s3.amazonaws.com").rstrip("/")
            self.repository = f"s3:{endpoint}/{access.bucket}/{access.prefix.strip('/')}".rstrip("/")
        self.describe = f"restic:{self.repository}"

    @property
    def storage(self) -> Directory | Bucket:
        """The directory or bucket the repository's files are in (check-storage looks at it)."""
        return Directory(self.backup.directory) if self.backup.directory is not None else Bucket(self.backup.s3)

    def origin(self, name: str) -> str:
        if self.backup.directory is not None:
            return str(Path(self.backup.directory, name))
        prefix = self.backup.s3.prefix.strip("/")
        return f"{S3}{self.backup.s3.bucket}/{prefix + '/' if prefix else ''}{name}"

    def name_of(self, origin: str) -> str:
        return SNAPSHOTS + origin.rpartition("/")[2]

    def list(self, prefix: str = "") -> Iterator[Found]:
        filters = [*(["--host", self.settings.host] if self.settings.host else []),
                   *(["--tag", ",".join(self.settings.tags)] if self.settings.tags else [])]
        answer = self._run(["snapshots", "--json", *filters], "list its snapshots")
        try:
            snapshots = json.loads(answer or "[]")
        except ValueError:
            raise DumpError(f"{self.describe}: 'restic snapshots --json' did not answer JSON") from None
        for snapshot in snapshots or []:
            if not any(_holds(path, self.settings.path) for path in snapshot.get("paths", [])):
                continue     # a snapshot of another directory in the same repository
            summary = snapshot.get("summary") or {}      # restic 0.17 and later
            yield Found(SNAPSHOTS + snapshot["id"], int(summary.get("total_bytes_processed", 0)),
                        parse_time(snapshot["time"]), CHECKSUM + snapshot["id"])

    @contextmanager
    def open(self, name: str, size: int, checksum: str | None) -> Iterator[BinaryIO]:
        """The tar of the source's path in the snapshot ``name``, members renamed below ``./``."""
        snapshot = name.removeprefix(SNAPSHOTS)
        what = f"{self.describe} snapshot {snapshot[:8]}"
        argv = self._argv(["dump", "--archive", "tar", snapshot, self.settings.path])
        inner = self.settings.path.strip("/")
        with pumped(lambda out: self._dump(argv, inner, out, what)) as stream:
            yield stream

    def _dump(self, argv: list[str], inner: str, out: BinaryIO, what: str) -> None:
        process = subprocess.Popen(argv, env=self._env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        errors: list[bytes] = []
        drain = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
        drain.start()
        problem: BaseException | None = None
        try:
            renamed_tar(process.stdout, out, inner)
        except BaseException as exc:         # restic's own failure (below) explains it better
            problem = exc
        finally:
            process.stdout.close()
            if problem is not None and process.poll() is None:
                process.kill()
            code = process.wait()
            drain.join()
        if code != 0 and not isinstance(problem, (BrokenPipeError, KeyboardInterrupt)):
            raise self._error(what, b"".join(errors).decode(errors="replace"))
        if isinstance(problem, tarfile.TarError):
            raise DumpError(f"{what}: {self.settings.path} is not a directory in it ({problem})",
                            hint="'path' must name the backed-up directory as the snapshots hold it")
        if problem is not None:
            raise problem

    def _run(self, arguments: list[str], doing: str) -> str:
        try:
            answer = subprocess.run(self._argv(arguments), env=self._env(), stdin=subprocess.DEVNULL,
                                    capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise DumpError(f"{self.describe}: restic did not {doing} within 10 min",
                            hint="check the repository's storage and the network to it") from None
        if answer.returncode != 0:
            raise self._error(f"{self.describe}: cannot {doing}", answer.stderr)
        return answer.stdout

    def _argv(self, arguments: list[str]) -> list[str]:
        restic = shutil.which("restic")
        if restic is None:
            raise DumpError("restic is not installed on this host", hint="install the restic package")
        password = Path(self.settings.password_file).expanduser()
        if not os.access(password, os.R_OK) or not password.is_file():
            raise DumpError(f"cannot read the restic password file {password}",
                            hint="'restic.password_file' must name a file this user can read")
        options = ["-o", f"s3.region={self.backup.s3.region}"] if self.backup.s3 and self.backup.s3.region else []
        return [restic, "--repo", self.repository, "--password-file", str(password), "--no-lock", "--no-cache",
                "--quiet", *options, *arguments]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}    # the spec says it all
        if self.backup.s3 is not None:
            keys = credentials(self.backup.s3)      # {} leaves the keys to the environment
            env.update({name.upper(): value for name, value in keys.items()})
        return env

    def _error(self, what: str, stderr: str) -> DumpError:
        text = " ".join(stderr.split())
        for marker, line, hint in _KNOWN:
            if marker in text:
                return DumpError(f"{what}: {line}", hint=hint)
        last = (stderr.strip().splitlines() or ["(no output)"])[-1].removeprefix("Fatal: ")
        return DumpError(f"{what}: restic says: {last}", hint="check the repository, its password and keys")


_KNOWN = (
    ("wrong password", "wrong password (or no key found)",
     "'restic.password_file' must hold this repository's password"),
    ("Is there a repository at the following location", "there is no restic repository there",
     "check the location (directory, or bucket and prefix)"),
    ("no matching ID found", "the snapshot is gone from the repository",
     "run 'labmgr dumps index' again (it marks it gone), then restore another point"),
    ("not found in snapshot", "the path is not in the snapshot",
     "'restic.path' must name the backed-up directory as the snapshots hold it"),
    ("Access Denied", "the S3 keys may not read the repository", "check the credentials"),
)


def renamed_tar(source: BinaryIO, out: BinaryIO, inner: str) -> None:
    """Copy the tar stream ``source`` to ``out`` with ``inner/`` taken off each member's name (and a hard
    link's target): ``srv/uploads/a.txt`` becomes ``./a.txt``. Members outside ``inner`` keep their names."""
    head = inner + "/" if inner else ""
    with tarfile.open(fileobj=source, mode="r|", bufsize=BLOCK) as reader, \
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=BLOCK) as writer:
        for member in reader:
            member.name = _below(member.name, head)
            if member.islnk():
                member.linkname = _below(member.linkname, head)
            writer.addfile(member, reader.extractfile(member) if member.isreg() else None)


def _below(name: str, head: str) -> str:
    return "./" + name[len(head):] if head and name.startswith(head) else name


def _holds(backed_up: str, path: str) -> bool:
    """Does a snapshot of ``backed_up`` hold ``path`` (the same directory or one below it)?"""
    backed_up = backed_up.rstrip("/") or "/"
    return path == backed_up or path.startswith(backed_up.rstrip("/") + "/")


def parse_time(text: str) -> datetime:
    """restic's RFC 3339 time (nanoseconds, any offset) in UTC, to the second."""
    trimmed = re.sub(r"(\.\d{1,6})\d*", r"\1", text.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(trimmed).astimezone(timezone.utc).replace(microsecond=0)
    except ValueError:
        raise DumpError(f"restic gave a snapshot time labmgr cannot read: {text!r}") from None
