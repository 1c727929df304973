"""Split a snapshot's rows into train / ref / val, deterministically and column-wise.

Two modes:

``images`` (default)
    Every image goes to exactly one set, so no image's points straddle two sets. The set is chosen by a
    stable hash: ``md5("<seed>|<site>|<source_id>|<image_id>")`` (computed by DuckDB over the distinct
    images, never Python's salted ``hash()``); its first 8 bytes read as a little-endian integer ``h`` give
    ``u = (h >> 11) / 2**53`` in [0, 1): ``u < val`` is val, ``u < val + ref`` is ref, the rest is train.
    The same snapshot and seed always give the same split, and adding images to a snapshot never moves
    the existing ones.

``points``
    Point-stratified like pyspacer's ``SplitMode.POINTS_STRATIFIED``: within each class, a seeded random
    order of its points; the first ``round(n * val)`` go to val, the next ``round(n * ref)`` to ref, the
    rest to train. Points of one image may land in different sets.

Either way, a class the model cannot learn (absent from train or from ref: pyspacer's
``preprocess_labels`` rule) is dropped from every set and counted in ``SplitResult.dropped_classes``.

Unlike pyspacer's ``split_labels``, the ref set is not capped at ``TRAINING_BATCH_LABEL_COUNT`` rows:
our trainer keeps ref in one float32 array, and a bigger ref set calibrates better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl
from mermaid_data import storage
from mermaid_data.lake import Lake
from mermaid_data.snapshot.build import ROWS_FILE, read_manifest, snapshot_uri
from mermaid_data.snapshot.lifecycle import resolve
from mermaid_data.sqlfiles import load_sql

from mermaid_train.errors import TrainConfigError, TrainDataError

SPLITS = ("train", "ref", "val")
SPLIT_CODES = {name: code for code, name in enumerate(SPLITS)}
MODES = ("images", "points")
IMAGE_KEY = ("site", "source_id", "image_id")


@dataclass(frozen=True)
class SplitResult:
    """The rows kept for training, with ``class_key`` and ``split`` columns, and what was dropped."""

    rows: pl.DataFrame  # snapshot rows kept + "class_key" ("{ba}::{gf}") + "split" in {"train","ref","val"}
    classes: list[str]  # sorted class keys present in train AND ref (the model's classes)
    dropped_classes: dict[str, int]  # class_key -> annotations dropped (too rare to be in train and ref)

    def counts(self) -> dict[str, int]:
        """Annotations per set."""
        counted = dict(self.rows.group_by("split").len().iter_rows())
        return {name: int(counted.get(name, 0)) for name in SPLITS}


def load_snapshot_rows(lake: Lake, snapshot_id: str) -> tuple[str, dict, pl.DataFrame]:
    """``(full snapshot ID, manifest, rows)`` of a published snapshot (an ID or a unique prefix).

    An unknown ID raises ``mermaid_data.errors.SnapshotError`` listing the nearest published IDs.
    """
    sid = resolve(lake, snapshot_id)
    where = snapshot_uri(lake, sid)
    manifest = read_manifest(where)
    rows_uri = where.join(ROWS_FILE)
    if rows_uri.is_s3:
        import io

        rows = pl.read_parquet(io.BytesIO(storage.read_bytes(rows_uri)))
    else:
        rows = pl.read_parquet(rows_uri.key)
    return sid, manifest, rows


def check_ratios(ref_val_ratios) -> tuple[float, float]:
    """Validate ``(ref, val)``: two numbers in [0, 1) whose sum is below 1."""
    fix = "pass two fractions such as (0.1, 0.1): ref and val each >= 0, ref + val < 1"
    try:
        ref, val = ref_val_ratios
    except (TypeError, ValueError):
        raise TrainConfigError(f"ref_val_ratios must be a pair (ref, val), got {ref_val_ratios!r}", fix=fix) from None
    for name, value in (("ref", ref), ("val", val)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TrainConfigError(f"{name} ratio must be a number, got {value!r}", fix=fix)
        if not math.isfinite(value) or value < 0:
            raise TrainConfigError(f"{name} ratio must be >= 0, got {value!r}", fix=fix)
    if ref + val >= 1:
        raise TrainConfigError(
            f"ref + val ratios must sum below 1 (got {ref} + {val} = {ref + val:g}), leaving rows to train on",
            fix=fix,
        )
    return float(ref), float(val)


def split_snapshot(rows: pl.DataFrame, *, ref_val_ratios=(0.1, 0.1), seed: int = 0, mode: str = "images") -> SplitResult:
    """Assign every row to train / ref / val (see the module docstring) and drop unlearnable classes."""
    ref, val = check_ratios(ref_val_ratios)
    if mode not in MODES:
        raise TrainConfigError(f"unknown split mode {mode!r}", fix=f"use one of {', '.join(MODES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TrainConfigError(f"seed must be a non-negative integer, got {seed!r}", fix="pass e.g. seed=0")
    if rows.height == 0:
        raise TrainDataError("the snapshot has no rows", fix="build a snapshot that keeps some annotations")
    rows = rows.with_columns(
        (pl.col("benthic_attribute_id") + "::" + pl.col("growth_form_id").fill_null("")).alias("class_key")
    )
    if mode == "images":
        split = _image_split(rows, ref, val, int(seed))
    else:
        split = _point_split(rows, ref, val, int(seed))
    rows = rows.with_columns(split.alias("split"))

    per_class = rows.group_by("class_key").agg(
        pl.len().alias("n"),
        (pl.col("split") == "train").any().alias("in_train"),
        (pl.col("split") == "ref").any().alias("in_ref"),
    )
    learnable = per_class.filter(pl.col("in_train") & pl.col("in_ref"))
    classes = sorted(learnable["class_key"].to_list())
    dropped = per_class.filter(~(pl.col("in_train") & pl.col("in_ref"))).sort("class_key")
    dropped_classes = {k: int(n) for k, n in zip(dropped["class_key"].to_list(), dropped["n"].to_list())}
    counts_before = _count_line(rows, per_class.height)
    if len(classes) < 2:
        raise TrainDataError(
            f"fewer than two classes left after splitting: {len(classes)} class(es) in both train and ref "
            f"({counts_before}; {len(dropped_classes)} class(es) too rare to be in train and ref)",
            fix="use a snapshot with more annotations or classes, a different seed, or --split points",
        )
    kept = rows.filter(pl.col("class_key").is_in(classes))
    result = SplitResult(kept, classes, dropped_classes)
    counts = result.counts()
    empty = [name for name in SPLITS if counts[name] == 0]
    if empty:
        raise TrainDataError(
            f"the {' and '.join(empty)} set(s) are empty after splitting "
            f"(train {counts['train']:,}, ref {counts['ref']:,}, val {counts['val']:,} annotations)",
            fix="raise the ref/val ratios or use a bigger snapshot",
        )
    return result


def _count_line(rows: pl.DataFrame, n_classes: int) -> str:
    counted = dict(rows.group_by("split").len().iter_rows())
    return (f"{rows.height:,} annotations in {n_classes} classes: train {counted.get('train', 0):,}, "
            f"ref {counted.get('ref', 0):,}, val {counted.get('val', 0):,}")


def _image_split(rows: pl.DataFrame, ref: float, val: float, seed: int) -> pl.Series:
    images = rows.select(IMAGE_KEY).unique()
    con = duckdb.connect(config={"threads": 2})
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("images", images.to_arrow())
        hashed = pl.from_arrow(con.execute(load_sql("train/split_images"), {"seed": str(seed)}).to_arrow_table())
    finally:
        con.close()
    # md5_number_upper = the digest's first 8 bytes as a little-endian uint64; its top 53 bits -> [0, 1)
    u = (hashed["h"].to_numpy() >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    assigned = np.where(u < val, "val", np.where(u < val + ref, "ref", "train"))
    hashed = hashed.select(IMAGE_KEY).with_columns(pl.Series("split", assigned))
    return rows.select(IMAGE_KEY).join(hashed, on=list(IMAGE_KEY), how="left", maintain_order="left")["split"]


def _point_split(rows: pl.DataFrame, ref: float, val: float, seed: int) -> pl.Series:
    rng = np.random.default_rng([seed, 0x5B117])
    ranked = rows.select("class_key").with_columns(pl.Series("u", rng.random(rows.height))).with_columns(
        (pl.col("u").rank("ordinal").over("class_key") - 1).alias("r"),
        pl.len().over("class_key").alias("n"),
    )
    n = ranked["n"].to_numpy().astype(np.float64)
    r = ranked["r"].to_numpy()
    # np.round rounds half to even, like Python's round() in pyspacer's goal sizes
    n_val = np.round(n * val)
    n_ref = np.round(n * ref)
    assigned = np.where(r < n_val, "val", np.where(r < n_val + n_ref, "ref", "train"))
    return pl.Series("split", assigned)
