"""Point-in-time copies of production: capture them, find them."""

from .capture import capture
from .store import Snapshot, delete_snapshot, find_snapshot, list_snapshots

__all__ = ["Snapshot", "capture", "delete_snapshot", "find_snapshot", "list_snapshots"]
