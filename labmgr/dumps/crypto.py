"""age encryption at rest, through pyrage.

pyrage's ``encrypt_io``/``decrypt_io`` stream between file-like objects (they
read in 8 KiB pieces and write 64 KiB age chunks), so a dump is never held in
memory. Recipients come from the spec; the identity is needed only to read a
dump back (to inject it into a lab).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pyrage

from .errors import DumpError

_SSH_PREFIXES = ("ssh-ed25519 ", "ssh-rsa ")


def recipients(texts: list[str]) -> list:
    """Parse age (``age1...``) or SSH public-key recipients; a bad one is named."""
    parsed = []
    for text in texts:
        text = text.strip()
        try:
            if text.startswith(_SSH_PREFIXES):
                parsed.append(pyrage.ssh.Recipient.from_str(text))
            else:
                parsed.append(pyrage.x25519.Recipient.from_str(text))
        except pyrage.RecipientError as exc:
            raise DumpError(f"'{text[:24]}...' is not an age recipient: {exc}",
                            hint="use a public key like age1... from 'age-keygen -y'") from None
    return parsed


def load_identities(identity_file: Path) -> list:
    """The identities of an age identity file (``AGE-SECRET-KEY-1...`` lines) or an SSH private key."""
    try:
        data = Path(identity_file).read_bytes()
    except OSError as exc:
        raise DumpError(f"cannot read the age identity {identity_file}: {exc.strerror}") from None
    try:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
            return [pyrage.ssh.Identity.from_buffer(data)]
        keys = [line.strip() for line in data.decode().splitlines()
                if line.strip().startswith("AGE-SECRET-KEY-")]
        identities = [pyrage.x25519.Identity.from_str(key) for key in keys]
    except (pyrage.IdentityError, UnicodeDecodeError, ValueError) as exc:
        raise DumpError(f"{identity_file} is not a valid age identity file: {exc}") from None
    if not identities:
        raise DumpError(f"{identity_file} holds no age identity (no AGE-SECRET-KEY-1... line)")
    return identities


def encrypt(reader: BinaryIO, writer: BinaryIO, to: list) -> None:
    pyrage.encrypt_io(reader, writer, to)


def decrypt(reader: BinaryIO, writer: BinaryIO, identities: list, what: str) -> None:
    try:
        pyrage.decrypt_io(reader, writer, identities)
    except pyrage.DecryptError as exc:
        raise DumpError(f"cannot decrypt {what}: {exc}",
                        hint="is the identity file the one matching the spec's recipients?") from None
