"""A real restic repository for the tests (Debian's restic): made, backed up to and pruned as a team's
own cron job would, with the password in a file."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path


class ResticRepo:
    def __init__(self, repository: str, password_file: Path, keys: dict | None = None) -> None:
        self.repository, self.password_file = repository, password_file
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))},
                    "TZ": "UTC", **{k.upper(): v for k, v in (keys or {}).items()}}

    def run(self, *args: str) -> str:
        result = subprocess.run(["restic", "--repo", self.repository, "--password-file", str(self.password_file),
                                 "--no-cache", *args], env=self.env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def init(self) -> "ResticRepo":
        self.run("init", "--quiet")
        return self

    def backup(self, directory: Path, at: datetime, host: str = "lmk-prod") -> None:
        """A snapshot of ``directory`` (an absolute path) stamped ``at``."""
        self.run("backup", "--quiet", "--host", host, "--time", at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                 str(directory))

    def snapshots(self) -> list[dict]:
        return json.loads(self.run("snapshots", "--json", "--no-lock"))

    def forget(self, snapshot: str) -> None:
        self.run("forget", "--quiet", snapshot)


def password_file(directory: Path, text: str = "correct horse battery staple") -> Path:
    path = directory / f"restic-{hashlib.sha256(text.encode()).hexdigest()[:8]}.pass"
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def file_sums(root: Path) -> dict[str, str]:
    """Every file below ``root``: its path relative to it -> sha256."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
