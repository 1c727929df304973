"""Which annotations train, calibrate and validate: ``assign`` (train / ref / val), then ``subsample``
(an optional class-aware cut of the train set)."""

from mermaid_train.split.assign import (
    IMAGE_KEY,
    MODES,
    SPLIT_CODES,
    SPLITS,
    SplitResult,
    check_ratios,
    load_snapshot_rows,
    split_snapshot,
)
from mermaid_train.split.subsample import Strategy, Subsample, SubsampleResult, quotas, subsample_train

__all__ = ["IMAGE_KEY", "MODES", "SPLITS", "SPLIT_CODES", "SplitResult", "Strategy", "Subsample", "SubsampleResult",
           "check_ratios", "load_snapshot_rows", "quotas", "split_snapshot", "subsample_train"]
