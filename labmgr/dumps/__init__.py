"""Hourly dumps: the store (files + manifests), its SQLite catalog, import, verify, retention.

Collection from production (``collect.py``, ``sources/``) writes through
``DumpStore.write``; everything here is files and SQLite, no libvirt.
"""

from .catalog import Catalog, Cell
from .errors import DumpError
from .importer import ImportResult, import_dir
from .record import DumpRecord
from .retention import plan_prune, prune
from .store import DumpStore, store_for
from .verify import verify

__all__ = ["Catalog", "Cell", "DumpError", "DumpRecord", "DumpStore", "ImportResult", "import_dir",
           "plan_prune", "prune", "store_for", "verify"]
