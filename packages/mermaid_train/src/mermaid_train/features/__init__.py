"""Features for training, in data-flow order: ``pinned`` (which feature object each row names, as the
snapshot pinned it), ``cache`` (fetch each feature object once), ``npz`` (read a pyspacer feature file and
pick the annotated points), ``pack`` (one memory-mapped array per snapshot+split+feature objects)."""

from mermaid_train.features.cache import DEFAULT_FETCH_WORKERS, FeatureCache, FetchReport, Pin
from mermaid_train.features.npz import load_npz, read_points
from mermaid_train.features.pack import PACK_DTYPES, PackedData, feature_uris, gather, open_packed, pack

__all__ = ["DEFAULT_FETCH_WORKERS", "PACK_DTYPES", "FeatureCache", "FetchReport", "PackedData", "Pin", "feature_uris",
           "gather", "load_npz", "open_packed", "pack", "read_points"]
