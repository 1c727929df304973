"""Train/ref/val split: determinism, images never straddling sets, point stratification, rare classes, errors."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import polars as pl
import pytest
from mermaid_data.errors import SnapshotError
from mermaid_train.errors import TrainConfigError, TrainDataError
from mermaid_train.split import load_snapshot_rows, split_snapshot


def synthetic_rows(images: int = 400, points: int = 10, classes: int = 5, seed: int = 0) -> pl.DataFrame:
    """``images`` images of ``points`` points each, labels drawn from ``classes`` classes."""
    rng = np.random.default_rng(seed)
    n = images * points
    image = np.repeat(np.arange(images), points)
    return pl.DataFrame({
        "site": np.where(image % 3 == 0, "mermaid", "coralnet"),
        "source_id": np.where(image % 3 == 0, "mermaid", (image % 7).astype(str)),
        "image_id": image.astype(str),
        "row": np.tile(np.arange(points), images).astype(np.int32),
        "col": np.zeros(n, dtype=np.int32),
        "benthic_attribute_id": [f"ba{c}" for c in rng.integers(0, classes, n)],
        "growth_form_id": "",
        "annotation_id": [f"a{i}" for i in range(n)],
    })


def test_same_seed_same_split_and_another_seed_differs() -> None:
    """Bug pinned: a split that depends on row order, Python's salted hash() or global RNG state."""
    rows = synthetic_rows()
    a = split_snapshot(rows, seed=3)
    b = split_snapshot(rows.reverse(), seed=3)  # row order must not matter in image mode
    joined = a.rows.join(b.rows, on="annotation_id", suffix="_b")
    assert joined.height == rows.height
    assert (joined["split"] == joined["split_b"]).all()
    c = split_snapshot(rows, seed=4)
    assert (a.rows["split"] != c.rows["split"]).any()


def test_image_hash_is_md5_of_seed_and_image_key() -> None:
    """Bug pinned: an unstable hash (Python's hash() differs per process) would re-split a snapshot per run.

    Two classes on every image, so one stratum: images in md5 order, the first kept for train, the next
    round(n * ref) to ref, the next round(n * val) to val, the rest to train (docs/training.md, "Splitting").
    """
    rows = synthetic_rows(images=60)
    rows = rows.with_columns(pl.when(pl.col("row") % 2 == 0).then(pl.lit("ba0")).otherwise(pl.lit("ba1"))
                             .alias("benthic_attribute_id"))
    result = split_snapshot(rows, ref_val_ratios=(0.2, 0.3), seed=9)
    keyed = result.rows.select("site", "source_id", "image_id", "split").unique().rows()
    order = sorted(keyed, key=lambda r: int.from_bytes(hashlib.md5(f"9|{r[0]}|{r[1]}|{r[2]}".encode()).digest()[:8],
                                                        "little"))
    assert [r[3] for r in order] == ["train"] + ["ref"] * 12 + ["val"] * 18 + ["train"] * 29


def test_no_image_in_two_sets_and_ratios_roughly_kept() -> None:
    """Bug pinned: points of one image leaking between train and val (optimistic val accuracy)."""
    rows = synthetic_rows(images=2000, points=5)
    result = split_snapshot(rows, ref_val_ratios=(0.1, 0.2), seed=0)
    per_image = result.rows.group_by("site", "source_id", "image_id").agg(pl.col("split").n_unique())
    assert per_image["split"].max() == 1
    counts = result.counts()
    assert sum(counts.values()) == rows.height
    assert (counts["ref"], counts["val"]) == (200 * 5, 400 * 5)  # exact: round(2000 * 0.1), round(2000 * 0.2) images
    assert set(result.rows.columns) >= {"class_key", "split"}
    assert result.classes == sorted(result.classes) == [f"ba{i}::" for i in range(5)]


def test_points_mode_is_stratified_per_class() -> None:
    """Bug pinned: points mode must split each class by the ratios (pyspacer's POINTS_STRATIFIED)."""
    rows = synthetic_rows(images=300, points=10, classes=4)
    result = split_snapshot(rows, ref_val_ratios=(0.1, 0.25), seed=1, mode="points")
    per_class = result.rows.group_by("class_key").agg(
        pl.len().alias("n"), (pl.col("split") == "val").sum().alias("val"), (pl.col("split") == "ref").sum().alias("ref"))
    for n, val, ref in per_class.select("n", "val", "ref").rows():
        assert val == round(n * 0.25)
        assert ref == round(n * 0.1)
    straddling = result.rows.group_by("image_id").agg(pl.col("split").n_unique()).filter(pl.col("split") > 1)
    assert straddling.height > 0  # points mode may split an image
    again = split_snapshot(rows, ref_val_ratios=(0.1, 0.25), seed=1, mode="points")
    assert again.rows["split"].equals(result.rows["split"])


def test_rare_classes_are_dropped_and_counted() -> None:
    """Bug pinned: a class only in val (or only in train) reaching pyspacer, or vanishing uncounted.

    (A class on one image cannot be in train and ref; one on two images is, see test_split_sizes.py.)
    """
    rows = synthetic_rows(images=200, points=10, classes=3)
    rare = pl.DataFrame({
        "site": ["coralnet", "coralnet"], "source_id": ["99", "99"], "image_id": ["rare1", "rare1"],
        "row": pl.Series([0, 1], dtype=pl.Int32), "col": pl.Series([0, 0], dtype=pl.Int32),
        "benthic_attribute_id": ["zzrare", "zzrare"], "growth_form_id": ["gf1", "gf1"],
        "annotation_id": ["r1", "r2"],
    })
    result = split_snapshot(pl.concat([rows, rare]), seed=0)
    assert result.dropped_classes == {"zzrare::gf1": 2}
    assert "zzrare::gf1" not in result.classes
    assert result.rows.height == rows.height
    assert not result.rows["class_key"].is_in(["zzrare::gf1"]).any()


@pytest.mark.parametrize("ratios", [(0.5, 0.5), (0.7, 0.4), (-0.1, 0.1), ("0.1", 0.1), (0.1,), (math.nan, 0.1),
                                    (True, 0.1), None])
def test_bad_ratios_are_config_errors(ratios) -> None:
    """Bug pinned: ratios that leave nothing to train on (or are not numbers) failing deep in sklearn."""
    with pytest.raises(TrainConfigError) as info:
        split_snapshot(synthetic_rows(images=20), ref_val_ratios=ratios)
    assert "Fix:" in str(info.value)


def test_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(TrainConfigError, match="split mode"):
        split_snapshot(synthetic_rows(images=20), mode="vectors")


def test_fewer_than_two_classes_names_the_counts() -> None:
    """Bug pinned: a one-class snapshot training a degenerate model instead of failing clearly."""
    rows = synthetic_rows(images=50, classes=1)
    with pytest.raises(TrainDataError, match=r"fewer than two classes.*1 class\(es\).*500 annotations") as info:
        split_snapshot(rows)
    assert "train" in str(info.value) and "val" in str(info.value)


def test_load_snapshot_rows_by_prefix_and_unknown_id_lists_nearest(train_lake) -> None:
    """Bug pinned: an unknown snapshot ID must name the nearest published IDs."""
    sid, manifest, rows = load_snapshot_rows(train_lake.lake, train_lake.snapshot_id[:12])
    assert sid == train_lake.snapshot_id and manifest["snapshot_id"] == sid
    assert rows.height == manifest["row_count"] > 0
    with pytest.raises(SnapshotError, match=f"nearest: .*{sid}"):
        load_snapshot_rows(train_lake.lake, "snap-0000000000000000")
