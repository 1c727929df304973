"""Split a snapshot's rows into train / ref / val, deterministically and column-wise.

Two modes:

``images`` (default)
    Every image goes to exactly one set, so no image's points straddle two sets, and the sets get their
    exact sizes: of ``n`` images, ``round(n * ref)`` go to ref and ``round(n * val)`` to val (halves to
    even, like Python's ``round``), the rest to train. Which images is decided by a stable hash,
    ``md5("<seed>|<site>|<source_id>|<image_id>")`` (computed by DuckDB, never Python's salted
    ``hash()``; its first 8 bytes as a little-endian integer), stratified by class:

    1. each image's *stratum* is its rarest class (the class on the fewest images; ties by class key),
       and within a stratum of ``n_s`` images they are ordered by the hash (``k = 0, 1, ...``);
    2. image ``k = 0`` of every stratum is kept for train (given away only if the sets cannot be filled
       otherwise, largest strata first);
    3. ref first: image ``k = 1`` of every stratum of two or more images (rarest strata first), then
       the stratum's further images in the order of ``(j + 0.5) / n_s`` over all strata (``j`` = the
       stratum's ref images so far: proportional shares, Sainte-Laguë) until ref holds its size;
    4. val the same way from what is left (``(j + 0.5) / n_s``, no first pick), until val holds its size.

    So a class on two images has one in train and one in ref, every stratum's share of each set follows
    its size, and the same snapshot and seed always give the same split (the row order does not matter).
    Adding images can move others: sizes are exact, not per-image draws.

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
from mermaid_data.snapshot.build import REPORTS, ROWS_FILE, read_manifest, snapshot_uri
from mermaid_data.snapshot.lifecycle import file_problems, resolve
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

    An unknown ID raises ``mermaid_data.errors.SnapshotError`` listing the nearest published IDs. The
    files training reads (``rows.parquet`` and the reports it copies) are checked against the manifest's
    SHA-256s first (``snapshot verify``'s check, on the bytes read): a snapshot changed after it was
    published is refused (``TrainDataError`` naming the file), never trained on under its old digest.
    """
    sid = resolve(lake, snapshot_id)
    where = snapshot_uri(lake, sid)
    manifest = read_manifest(where)
    rows_uri = where.join(ROWS_FILE)
    contents = {ROWS_FILE: storage.read_bytes(rows_uri)} if rows_uri.is_s3 else None
    listed = [name for name in (ROWS_FILE, *REPORTS) if name in manifest.get("files", {})]
    problems = file_problems(where, manifest, listed, contents=contents)
    if problems:
        name, _, problem = problems[0].partition(": ")
        more = f" ({len(problems) - 1} other file(s) differ too)" if len(problems) > 1 else ""
        raise TrainDataError(
            f"snapshot {sid} does not match its manifest: {name} {problem}{more}; it was changed after the "
            "snapshot was published, so training refuses it",
            where=str(where.join(name)),
            fix=f"run `mermaid-data snapshot verify {sid} --lake {lake.uri}` to list what differs; restore the "
            f"folder from an export or backup, or check with `mermaid-data snapshot rebuild {sid}` that the recipe "
            "still gives the published rows and build it again",
        )
    if contents is not None:
        import io

        rows = pl.read_parquet(io.BytesIO(contents[ROWS_FILE]))
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
    images = _image_strata(rows, seed)
    n = images.height
    n_ref, n_val = round(n * ref), round(n * val)  # Python's round: halves to even
    n_s = pl.col("n_s").cast(pl.Float64)
    # ref: the second image of every stratum of two or more (tier 0, rarest strata first), then shares
    # (k - 1 + 0.5) / n_s (tier 1), then the images kept for train (tier 2, largest strata first)
    ranked = images.with_columns(
        pl.when(pl.col("k") == 0).then(2).when(pl.col("k") == 1).then(0).otherwise(1).alias("tier"),
        pl.when(pl.col("k") == 0).then(-n_s).when(pl.col("k") == 1).then(n_s)
        .otherwise((pl.col("k").cast(pl.Float64) - 0.5) / n_s).alias("share"),
    )
    order = ["tier", "share", "stratum", "k"]
    chosen_ref = ranked.sort(order).head(n_ref).select("i")
    rest = ranked.join(chosen_ref, on="i", how="anti").sort("stratum", "k")
    # val: the rest of each stratum in hash order, shares (j + 0.5) / n_s; the images kept for train last
    rest = rest.with_columns(
        (pl.int_range(pl.len()).over("stratum") - (pl.col("k").min().over("stratum") == 0).cast(pl.Int64))
        .alias("j"))
    rest = rest.with_columns(
        pl.when(pl.col("k") == 0).then(1).otherwise(0).alias("tier"),
        pl.when(pl.col("k") == 0).then(-n_s).otherwise((pl.col("j").cast(pl.Float64) + 0.5) / n_s).alias("share"),
    )
    chosen_val = rest.sort(order).head(n_val).select("i")
    assigned = np.full(n, "train", dtype=object)
    assigned[chosen_ref["i"].to_numpy()] = "ref"
    assigned[chosen_val["i"].to_numpy()] = "val"
    sets = images.select(IMAGE_KEY).with_columns(pl.Series("split", assigned, dtype=pl.String))
    return rows.select(IMAGE_KEY).join(sets, on=list(IMAGE_KEY), how="left", maintain_order="left")["split"]


def _image_strata(rows: pl.DataFrame, seed: int) -> pl.DataFrame:
    """One row per image: its key, ``i`` (row number), ``stratum`` (rarest class), ``n_s``, ``k`` (hash rank)."""
    pairs = rows.select(*IMAGE_KEY, "class_key").unique()
    frequency = pairs.group_by("class_key").agg(pl.len().alias("class_images"))
    strata = (pairs.join(frequency, on="class_key").sort("class_images", "class_key")
              .unique(IMAGE_KEY, keep="first", maintain_order=True)
              .select(*IMAGE_KEY, pl.col("class_key").alias("stratum")))
    con = duckdb.connect(config={"threads": 2})
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("images", strata.select(IMAGE_KEY).to_arrow())
        hashed = pl.from_arrow(con.execute(load_sql("train/split_images"), {"seed": str(seed)}).to_arrow_table())
    finally:
        con.close()
    return (strata.join(hashed, on=list(IMAGE_KEY))
            .sort("stratum", "h", *IMAGE_KEY)
            .with_columns(pl.int_range(pl.len()).over("stratum").alias("k"), pl.len().over("stratum").alias("n_s"))
            .with_row_index("i"))


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
