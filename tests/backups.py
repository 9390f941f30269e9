"""Backups made the way a team makes them (compressed, encrypted, named its way), and fingerprints of
a location (every object version with its ETag; every file with its sha256 and mtime) to prove that
labmgr wrote nothing there."""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import subprocess
from pathlib import Path

import pyrage
import zstandard


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data)
    if compression == "xz":
        return lzma.compress(data)
    if compression == "zstd":
        return zstandard.ZstdCompressor(write_checksum=True).compress(data)
    return data


class Gpg:
    """A GnuPG key pair in its own home; ``key_file`` is the exported secret key labmgr is given."""

    def __init__(self, directory: Path) -> None:
        self.home = directory / "gnupg"
        self.home.mkdir(mode=0o700)
        self.env = {**os.environ, "GNUPGHOME": str(self.home)}
        self._gpg("--quick-gen-key", "--passphrase", "", "backups <backups@shop.test>", "ed25519", "default", "never")
        listing = self._gpg("--with-colons", "--list-secret-keys").decode()
        self.fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
        self._gpg("--quick-add-key", "--passphrase", "", self.fingerprint, "cv25519", "encr", "never")
        self.key_file = directory / "backups.gpg.asc"
        self.key_file.write_bytes(self._gpg("--armor", "--export-secret-keys", self.fingerprint))
        # the secret key is only needed until here: its agent (a daemon) ends now, none starts again
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=self.env, capture_output=True, check=True)
        self.agent_ended = True

    def encrypt(self, data: bytes) -> bytes:
        return self._gpg("--trust-model", "always", "--encrypt", "--recipient", self.fingerprint, input=data)

    def _gpg(self, *args: str, input: bytes | None = None) -> bytes:
        no_agent = ["--no-autostart"] if getattr(self, "agent_ended", False) else []
        return subprocess.run(["gpg", "--batch", "--yes", "--pinentry-mode", "loopback", *no_agent, *args],
                              env=self.env, input=input, capture_output=True, check=True).stdout


def age_keys(directory: Path) -> tuple[Path, str]:
    identity = pyrage.x25519.Identity.generate()
    path = directory / "backups.age"
    path.write_text(f"{identity}\n")
    return path, str(identity.to_public())


def seal(data: bytes, compression: str, cipher: str, *, age_recipient: str | None = None,
         gpg: Gpg | None = None) -> bytes:
    """What a team's cron job uploads: compressed, then encrypted."""
    packed = compress(data, compression)
    if cipher == "age":
        return pyrage.encrypt(packed, [pyrage.x25519.Recipient.from_str(age_recipient)])
    if cipher == "gpg":
        return gpg.encrypt(packed)
    return packed


def bucket_fingerprint(client, bucket: str) -> list[tuple]:
    """Every version and delete marker of every key, with ETag, size and time."""
    answer = client.list_object_versions(Bucket=bucket)
    versions = [(v["Key"], v["VersionId"], v["ETag"], v["Size"], v["LastModified"], v["IsLatest"])
                for v in answer.get("Versions", [])]
    markers = [(m["Key"], m["VersionId"], "marker", 0, m["LastModified"], m["IsLatest"])
               for m in answer.get("DeleteMarkers", [])]
    return sorted(versions + markers)


def directory_fingerprint(root: Path) -> list[tuple]:
    """Every file and folder below ``root``: path, sha256, size, mode, mtime."""
    found = []
    for top, dirs, names in os.walk(root):
        for name in sorted(dirs + names):
            path = Path(top, name)
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            found.append((str(path.relative_to(root)), digest, st.st_size, st.st_mode, st.st_mtime_ns))
    return sorted(found)


def stream_bytes(reader) -> bytes:
    out = io.BytesIO()
    while block := reader.read(1 << 16):
        out.write(block)
    return out.getvalue()
