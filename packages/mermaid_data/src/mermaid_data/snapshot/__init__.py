"""Versioned training snapshots: label shaping as SQL, IDs derived from the recipe, exact rebuilds."""

from mermaid_data.snapshot.build import SnapshotResult, create_snapshot
from mermaid_data.snapshot.spec import SnapshotSpec

__all__ = ["SnapshotResult", "SnapshotSpec", "create_snapshot"]
