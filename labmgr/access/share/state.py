"""A share's state: ``<state>/labs/<lab>/shares/<id>.json`` and the lock its server holds.

The file names the lab server and port, the expiry and, per person, a name and the SHA-256 of
the link's token (the tokens themselves are printed once and kept nowhere). The server holds an
exclusive ``flock`` on ``<id>.lock`` while it runs, so a reader tells a live share from one whose
process was killed without trusting a pid alone; ``lab down`` and ``labmgr unshare`` end a share
by signalling that pid, and revoke one person by rewriting the file (the server re-reads it).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import signal
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ...errors import LabError, NotFoundError
from ...lab import records

SHARES = "shares"


@dataclass
class Person:
    name: str
    token_sha256: str
    revoked: bool = False


@dataclass
class Share:
    id: str
    lab: str
    environment: str
    server: str             # spec server name
    hostname: str           # its production hostname (the Host the application sees)
    ip: str
    port: int
    listen: str             # ADDRESS:PORT the share's web server is bound to
    url: str                # the base of the links
    created_at: str
    expires_at: str
    pid: int = field(default_factory=os.getpid)
    people: list[Person] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return shares_dir(self.lab) / f"{self.id}.json"

    def expired(self, moment: datetime | None = None) -> bool:
        return (moment or datetime.now(timezone.utc)) >= parse_time(self.expires_at)

    def person_for(self, token: str) -> Person | None:
        """The person whose link carries ``token``: every hash is compared, in constant time each."""
        given = hashlib.sha256(token.encode()).hexdigest().encode()
        found = None
        for person in self.people:
            if hmac.compare_digest(given, person.token_sha256.encode()):
                found = person
        return found

    def link(self, token: str) -> str:
        return f"{self.url}/s/{token}"

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def shares_dir(lab: str) -> Path:
    return records.lab_dir(lab) / SHARES


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_id() -> str:
    return secrets.token_hex(3)


def load(path: Path) -> Share:
    data = json.loads(path.read_text())
    data["people"] = [Person(**p) for p in data.get("people", [])]
    return Share(**data)


class Hold:
    """The running server's claim on its share: an exclusive lock held until ``release``."""

    def __init__(self, share: Share) -> None:
        self.share = share
        self.lock_path = share.path.with_suffix(".lock")
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        for path in (self.share.path, self.lock_path):
            path.unlink(missing_ok=True)
        os.close(self.fd)


def _alive(lock_path: Path) -> bool:
    """True while a server holds the share's lock."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def active_shares(lab: str) -> list[Share]:
    """The lab's shares whose server runs (files left by a killed server are removed)."""
    out = []
    directory = shares_dir(lab)
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        lock = path.with_suffix(".lock")
        try:
            share = load(path)
        except (OSError, ValueError, TypeError):
            share = None
        if share is not None and _alive(lock):
            out.append(share)
        elif not _alive(lock):
            path.unlink(missing_ok=True)
            lock.unlink(missing_ok=True)
    return sorted(out, key=lambda s: s.created_at)


def find_share(lab: str, share_id: str) -> Share:
    for share in active_shares(lab):
        if share.id == share_id:
            return share
    raise NotFoundError(f"lab {lab} has no open share '{share_id}'", hint=f"'labmgr shares {lab}' lists them")


def revoke_person(lab: str, share_id: str, name: str) -> Share:
    """Make one person's link refuse from now on (the server re-reads the file)."""
    share = find_share(lab, share_id)
    person = next((p for p in share.people if p.name == name), None)
    if person is None:
        raise NotFoundError(f"share {share_id} of lab {lab} has no link for '{name}'",
                            hint="people: " + ", ".join(p.name for p in share.people))
    person.revoked = True
    share.save()
    return share


def end_share(share: Share, wait: float = 10) -> None:
    """Stop a share's server: SIGTERM, and SIGKILL if it still holds its lock after ``wait`` seconds
    (``lab down`` must not stop half-way because a share hangs)."""
    lock = share.path.with_suffix(".lock")
    for sig, patience in ((signal.SIGTERM, wait), (signal.SIGKILL, 5)):
        try:
            os.kill(share.pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + patience
        while _alive(lock) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _alive(lock):
            break
    else:
        raise LabError(f"share {share.id} of lab {share.lab} (pid {share.pid}) did not stop",
                       hint=f"kill -9 {share.pid}")
    share.path.unlink(missing_ok=True)
    lock.unlink(missing_ok=True)


def end_shares(lab: str) -> list[Share]:
    """End every share of ``lab`` (``lab down``)."""
    shares = active_shares(lab)
    for share in shares:
        end_share(share)
    return shares
