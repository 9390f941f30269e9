"""The one error kind of the dump store (catalog, import, verify, prune, encryption)."""

from __future__ import annotations

from ..errors import LabmgrError


class DumpError(LabmgrError):
    """A dump could not be stored, found, read or decrypted."""
