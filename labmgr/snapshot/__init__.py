"""Point-in-time copies of production: capture them, find them."""

from .capture import capture
from .store import Snapshot, find_snapshot, list_snapshots

__all__ = ["Snapshot", "capture", "find_snapshot", "list_snapshots"]
