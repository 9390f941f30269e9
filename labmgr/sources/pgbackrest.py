"""A team's pgBackRest repository, read-only: its command line, ``info`` and the stanza's restorable range.

Every run names the repository on the command line, reads no system configuration
(an empty ``--config`` and ``--config-include-path`` in scratch) and keeps its lock
and log files in scratch; only read commands are run here (``info``,
``archive-get``, ``restore`` into scratch): nothing is ever pushed, expired or
locked in the repository. S3 keys travel in pgBackRest's environment variables,
never on a command line or in a file (``restore_command`` inherits them).
"""

from __future__ import annotations

import bz2
import gzip
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

from ..dumps.errors import DumpError
from ..spec.pgbackrest import PgBackRestSource
from .locations import credentials

PG_LIB = Path("/usr/lib/postgresql")
WALK_BACK = 8          # archived WAL segments read from the newest back, looking for the last commit
COMMIT = re.compile(r"desc: (?:COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")


@dataclass(frozen=True)
class StanzaRange:
    """The seconds a stanza can be restored to: from the first backup's end to the last commit archived."""

    start: datetime
    end: datetime
    major: int
    backups: list[dict]         # label, type, start, stop (ISO)
    archive: tuple[str, str]    # first and last WAL segment archived


def host_bindir(major: int) -> Path:
    bindir = PG_LIB / str(major) / "bin"
    if not (bindir / "postgres").exists():
        raise DumpError(f"the stanza holds PostgreSQL {major} and this host has no PostgreSQL {major} to replay "
                        "its WAL", hint=f"install postgresql-{major} here")
    return bindir


def as_postgres() -> dict:
    """subprocess arguments that run a command as the host's postgres user (when labmgr is root)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


class Repository:
    """pgBackRest's view of one stanza; ``scratch`` (owned by postgres) holds its config, lock and log."""

    def __init__(self, source: PgBackRestSource, scratch: Path) -> None:
        self.source, self.scratch = source, scratch
        (scratch / "conf.d").mkdir(parents=True, exist_ok=True)
        # options of commands that take them (restore, archive-get); the repo-* commands refuse them on a command line
        (scratch / "pgbackrest.conf").write_text(f"[global]\nlock-path={scratch}\nlog-path={scratch}\n"
                                                 "log-level-file=off\n")
        if os.geteuid() == 0:
            for path in (scratch, scratch / "conf.d", scratch / "pgbackrest.conf"):
                shutil.chown(path, "postgres", "postgres")

    @property
    def options(self) -> list[str]:
        s = self.scratch
        common = [f"--config={s}/pgbackrest.conf", f"--config-include-path={s}/conf.d", "--log-level-console=warn",
                  f"--stanza={self.source.stanza}"]
        if self.source.directory is not None:
            return common + [f"--repo1-path={self.source.directory}"]
        access = self.source.s3
        endpoint = urlsplit(access.endpoint or f"https://s3.{access.region or 'us-east-1'}.amazonaws.com")
        s3 = ["--repo1-type=s3", f"--repo1-s3-bucket={access.bucket}", f"--repo1-s3-endpoint={endpoint.hostname}",
              f"--repo1-s3-region={access.region or 'us-east-1'}", f"--repo1-path=/{access.prefix.strip('/')}"]
        if endpoint.port:
            s3.append(f"--repo1-storage-port={endpoint.port}")
        if access.endpoint:        # another S3-compatible server: addressed by path, as labmgr's boto3 does
            s3.append("--repo1-s3-uri-style=path")
        if access.ca_file:
            s3.append(f"--repo1-storage-ca-file={access.ca_file}")
        return common + s3

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGBACKREST_")}
        if self.source.s3 is None:
            return env
        keys = credentials(self.source.s3) or {
            "aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", ""),
            "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
            **({"aws_session_token": os.environ["AWS_SESSION_TOKEN"]} if "AWS_SESSION_TOKEN" in os.environ else {})}
        if not keys["aws_access_key_id"]:
            raise DumpError(f"{self.source.describe}: no S3 keys", hint="give s3.credentials_file, or "
                            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
        env.update(PGBACKREST_REPO1_S3_KEY=keys["aws_access_key_id"],
                   PGBACKREST_REPO1_S3_KEY_SECRET=keys["aws_secret_access_key"])
        if "aws_session_token" in keys:
            env["PGBACKREST_REPO1_S3_TOKEN"] = keys["aws_session_token"]
        return env

    def run(self, command: str, *options: str, params: tuple[str, ...] = (), timeout: float = 600,
            binary: bool = False):
        try:
            done = subprocess.run(["pgbackrest", *self.options, *options, command, *params], capture_output=True,
                                  env=self.env, timeout=timeout, cwd=self.scratch, **as_postgres())
        except FileNotFoundError:
            raise DumpError("pgbackrest is not installed on this host", hint="apt-get install pgbackrest") from None
        except subprocess.TimeoutExpired:
            raise DumpError(f"{self.source.describe}: pgbackrest {command} took more than {timeout:.0f} s") from None
        if done.returncode != 0:
            lines = [line.strip() for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
            raise DumpError(f"{self.source.describe}: pgbackrest {command} failed: "
                            f"{' '.join(lines[:2]) or f'exit {done.returncode}'}")
        return done.stdout if binary else done.stdout.decode(errors="replace")

    def info(self) -> dict:
        stanza = json.loads(self.run("info", "--output=json"))[0]
        status = stanza.get("status", {})
        if status.get("code", 0) != 0 or not stanza.get("db"):
            raise DumpError(f"{self.source.describe}: stanza '{self.source.stanza}' is not usable in the "
                            f"repository: {status.get('message', 'no database')}",
                            hint="check the stanza's name and the repository's place")
        return stanza

    def restorable_range(self) -> StanzaRange:
        stanza = self.info()
        db = stanza["db"][-1]                      # the current database (a stanza-upgrade adds one)
        backups = [b for b in stanza["backup"] if not b.get("error") and b["database"]["id"] == db["id"]]
        archive = next((a for a in stanza["archive"] if a["database"]["id"] == db["id"] and a.get("max")), None)
        if not backups or archive is None:
            raise DumpError(f"{self.source.describe}: no complete backup with archived WAL",
                            hint="take a backup with pgbackrest first")
        major = int(db["version"].split(".")[0])
        first_stop = min(b["timestamp"]["stop"] for b in backups)
        oldest_wal = min(b["archive"]["start"] for b in backups)
        last = self.last_commit(archive["id"], archive["max"], oldest_wal, major)
        # a target before a backup's end is not yet consistent; one at or after the last commit is never reached
        start = datetime.fromtimestamp(first_stop + 1, timezone.utc)
        end = (last - timedelta(microseconds=1)).replace(microsecond=0) if last else start - timedelta(seconds=1)
        if end < start:
            raise DumpError(f"{self.source.describe}: no transaction was committed after the first backup, "
                            "so no second can be restored to yet")
        return StanzaRange(start, end, major, [
            {"label": b["label"], "type": b["type"],
             "start": _iso(b["timestamp"]["start"]), "stop": _iso(b["timestamp"]["stop"])} for b in backups],
            (archive["min"], archive["max"]))

    def last_commit(self, archive_id: str, newest: str, oldest: str, major: int) -> datetime | None:
        """The newest commit (or abort) time in the archived WAL: read back from ``newest`` segment by segment
        (``repo-ls`` and ``repo-get``, which read the repository and need no cluster here)."""
        waldump = host_bindir(major) / "pg_waldump"
        segment = newest
        for _ in range(WALK_BACK):
            folder = f"archive/{self.source.stanza}/{archive_id}/{segment[:16]}"
            names = json.loads(self.run("repo-ls", "--output=json", params=(folder,)))
            name = next((n for n in sorted(names) if n.startswith(f"{segment}-")), None)
            if name is not None:
                wal = self.scratch / segment
                wal.write_bytes(decompress(self.run("repo-get", params=(f"{folder}/{name}",), binary=True), name))
                dump = subprocess.run([str(waldump), str(wal)], capture_output=True, text=True)
                wal.unlink()
                times = COMMIT.findall(dump.stdout)
                if times:
                    return datetime.fromisoformat(times[-1]).replace(tzinfo=timezone.utc)
            if segment <= oldest:
                return None
            segment = previous_segment(segment)
        return None


def decompress(data: bytes, name: str) -> bytes:
    """An archived segment as pgBackRest compressed it (its name's extension says how)."""
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".zst"):
        import zstandard
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 30)
    if name.endswith(".bz2"):
        return bz2.decompress(data)
    if name.endswith(".lz4"):
        raise DumpError(f"{name}: lz4-compressed WAL is not read yet", hint="archive with compress-type gz or zst")
    return data


def previous_segment(name: str) -> str:
    """The WAL segment before ``name`` (16 MiB segments: 256 per log id)."""
    timeline, log, seg = int(name[:8], 16), int(name[8:16], 16), int(name[16:], 16)
    log, seg = (log, seg - 1) if seg else (log - 1, 0xFF)
    return f"{timeline:08X}{log:08X}{seg:08X}"


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
