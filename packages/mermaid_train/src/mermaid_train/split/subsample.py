"""Deterministic class-aware subsampling of the train set (``TrainingOptions(subsample=...)``).

Applied to the packed **train** rows after the split, so ref and val keep the snapshot's class mix:

1. a class with fewer than ``min_per_class`` train rows is dropped (quota 0; pyspacer's preprocessing
   then drops it from ref and val too, and the run counts it);
2. if ``total`` is at least the remaining rows, every row is kept;
3. ``stratified``: each class keeps its share, ``total * n_c / T`` rounded down, and the rows left over
   go one each to the classes with the largest remainders (ties: the class listed first), so the quotas
   sum to exactly ``total``;
4. ``balanced``: every class is capped at the same quota ``q``, the largest with
   ``sum_c min(n_c, q) <= total`` (classes under ``q`` keep all their rows); the rows left over go one
   each to the capped classes, in class order, so the quotas sum to exactly ``total``.

Which rows a class keeps is decided in SQL (``sql/train/subsample.sql``): the first ``quota`` by
``md5(annotation_id)``. The per-class report (before, quota, kept) is ``subsample_counts.csv``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import duckdb
import numpy as np
import polars as pl
from mermaid_data.sqlfiles import load_sql

from mermaid_train.errors import TrainConfigError


class Strategy(StrEnum):
    STRATIFIED = "stratified"
    BALANCED = "balanced"


_FIX = ("pass Subsample(strategy='stratified'|'balanced', total=N, min_per_class=M), or on the command line "
        "--subsample balanced:N[:M]")
_SPEC = re.compile(r"^(stratified|balanced):([0-9_]+)(?::([0-9_]+))?$")


@dataclass(frozen=True)
class Subsample:
    """Keep ``total`` train rows, class by class (module docstring); classes under ``min_per_class`` go."""

    strategy: str = Strategy.BALANCED.value
    total: int = 0
    min_per_class: int = 0

    def validate(self) -> None:
        if self.strategy not in tuple(Strategy):
            raise TrainConfigError(f"subsample strategy {self.strategy!r} is not one of "
                                   f"{', '.join(s.value for s in Strategy)}", fix=_FIX)
        for name in ("total", "min_per_class"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise TrainConfigError(f"subsample {name} {value!r} must be a non-negative integer", fix=_FIX)
        if self.total < 1:
            raise TrainConfigError("subsample total must be at least 1", fix=_FIX)

    @classmethod
    def parse(cls, text: str) -> Subsample:
        """``"balanced:100000"`` or ``"stratified:50000:20"`` (strategy:total[:min_per_class])."""
        match = _SPEC.match(str(text).strip())
        if match is None:
            raise TrainConfigError(f"--subsample {text!r} is not STRATEGY:TOTAL[:MIN_PER_CLASS]", fix=_FIX)
        strategy, total, minimum = match.groups()
        made = cls(strategy, int(total), int(minimum or 0))
        made.validate()
        return made

    def __str__(self) -> str:
        return f"{self.strategy}:{self.total}:{self.min_per_class}"


@dataclass(frozen=True)
class SubsampleResult:
    """The train rows kept and the per-class report."""

    kept: np.ndarray  # packed row indices of the kept train rows, ascending
    counts: pl.DataFrame  # class_key, before, quota, kept, dropped_below_min
    dropped_classes: dict[str, int]  # class_key -> train rows, for classes under min_per_class


def quotas(before: np.ndarray, subsample: Subsample) -> np.ndarray:
    """Rows to keep per class, for train counts ``before`` (one per class, in class order)."""
    before = np.asarray(before, dtype=np.int64)
    eligible = before >= max(subsample.min_per_class, 1)
    available = np.where(eligible, before, 0)
    total = int(subsample.total)
    if total >= available.sum():
        return available
    if subsample.strategy == Strategy.STRATIFIED:
        exact = available * total / available.sum()
        quota = np.floor(exact).astype(np.int64)
        left = total - int(quota.sum())
        remainder = np.where(eligible, exact - quota, -1.0)
        order = np.lexsort((np.arange(len(before)), -remainder))  # largest remainder first, then class order
        quota[order[:left]] += 1
        return quota
    # balanced: the largest common cap q with sum(min(n, q)) <= total, found on the sorted counts
    q = _balanced_cap(available, total)
    quota = np.minimum(available, q)
    left = total - int(quota.sum())
    capped = np.flatnonzero(available > q)
    quota[capped[:left]] += 1
    return quota


def _balanced_cap(counts: np.ndarray, total: int) -> int:
    """max q such that sum(min(counts, q)) <= total (counts not all kept)."""
    ordered = np.sort(counts)
    # with the k smallest classes kept whole, the others share what is left equally
    kept_whole = np.concatenate(([0], np.cumsum(ordered)[:-1]))
    others = len(ordered) - np.arange(len(ordered))
    caps = (total - kept_whole) // others  # the cap if classes k.. are capped
    # the valid k is the first where the cap does not exceed the k-th smallest count
    valid = np.flatnonzero(caps <= ordered)
    return int(caps[valid[0]])


def subsample_train(rows: pl.DataFrame, subsample: Subsample, classes: list[str]) -> SubsampleResult:
    """Choose the train rows to keep among ``rows`` (packed rows: ``split``, ``class_key``, ``annotation_id``)."""
    subsample.validate()
    train = rows.select("class_key", "annotation_id").with_row_index("pos").filter(rows["split"] == "train")
    counted = dict(train.group_by("class_key").len().iter_rows())
    before = np.array([counted.get(c, 0) for c in classes], dtype=np.int64)
    quota = quotas(before, subsample)
    quota_table = pl.DataFrame({"class_key": classes, "quota": quota})
    con = duckdb.connect(config={"threads": 2})
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("train", train.with_columns(pl.col("pos").cast(pl.Int64)).to_arrow())
        con.register("quotas", quota_table.to_arrow())
        kept = con.execute(load_sql("train/subsample")).fetchnumpy()["pos"].astype(np.int64)
    finally:
        con.close()
    kept_counts = np.bincount(
        rows["class_key"].gather(kept).cast(pl.Enum(classes)).to_physical().to_numpy(), minlength=len(classes))
    below = (before > 0) & (before < max(subsample.min_per_class, 1))
    counts = pl.DataFrame({"class_key": classes, "before": before, "quota": quota, "kept": kept_counts,
                           "dropped_below_min": below})
    dropped = {c: int(n) for c, n, b in zip(classes, before, below) if b}
    return SubsampleResult(kept, counts, dropped)
