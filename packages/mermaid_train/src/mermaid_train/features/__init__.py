"""Features for training, in data-flow order: ``cache`` (fetch each feature file once), ``npz`` (read a
pyspacer feature file and pick the annotated points), ``pack`` (one memory-mapped array per snapshot+split)."""

from mermaid_train.features.cache import DEFAULT_FETCH_WORKERS, FeatureCache, FetchReport
from mermaid_train.features.npz import load_npz, read_points
from mermaid_train.features.pack import PACK_DTYPES, PackedData, feature_uris, gather, open_packed, pack

__all__ = ["DEFAULT_FETCH_WORKERS", "PACK_DTYPES", "FeatureCache", "FetchReport", "PackedData", "feature_uris",
           "gather", "load_npz", "open_packed", "pack", "read_points"]
