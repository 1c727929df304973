"""The by-image split gives each set its exact size (small lakes of 10-100 images), stratified by class."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from mermaid_train.split import split_snapshot


def image_rows(images: int, points: int = 25, classes: int = 4, seed: int = 0) -> pl.DataFrame:
    """``images`` MERMAID images of ``points`` points each, labels drawn from ``classes`` classes."""
    rng = np.random.default_rng(seed)
    n = images * points
    image = np.repeat(np.arange(images), points)
    return pl.DataFrame({
        "site": "mermaid", "source_id": "mermaid", "image_id": [f"img{i:04d}" for i in image],
        "row": np.tile(np.arange(points), images).astype(np.int32), "col": np.zeros(n, dtype=np.int32),
        "benthic_attribute_id": [f"ba{c}" for c in rng.integers(0, classes, n)], "growth_form_id": "",
        "annotation_id": [f"a{i}" for i in range(n)],
    })


def image_sets(result) -> dict[str, int]:
    per_image = result.rows.group_by("site", "source_id", "image_id").agg(pl.col("split").first())
    counted = dict(per_image.group_by("split").len().iter_rows())
    return {name: int(counted.get(name, 0)) for name in ("train", "ref", "val")}


# images, (ref, val) -> (train, ref, val) images, worked out by hand: val = round(n * val), ref = round(n * ref)
# (halves to even, like Python's round), train the rest
SIZES = [
    (10, (0.1, 0.1), (8, 1, 1)),
    (17, (0.075, 0.125), (14, 1, 2)),  # ref 1.275 -> 1, val 2.125 -> 2
    (40, (0.1, 0.1), (32, 4, 4)),
    (100, (0.075, 0.125), (80, 8, 12)),  # ref 7.5 -> 8, val 12.5 -> 12 (half to even)
    (25, (0.2, 0.3), (12, 5, 8)),  # ref 5, val 7.5 -> 8
    (64, (0.15, 0.25), (38, 10, 16)),  # ref 9.6 -> 10, val 16
]


@pytest.mark.parametrize(("images", "ratios", "expected"), SIZES)
def test_each_set_gets_its_exact_number_of_images(images: int, ratios, expected) -> None:
    """Bug pinned: each image's set drawn by an independent hash left ref with 0 of 40 images
    ("train 875, ref 0, val 125" on a 1,000-annotation MERMAID lake) and training failed."""
    result = split_snapshot(image_rows(images), ref_val_ratios=ratios, seed=0)
    sets = image_sets(result)
    assert (sets["train"], sets["ref"], sets["val"]) == expected
    assert sum(result.counts().values()) == images * 25  # nothing dropped: four common classes
    for seed in range(1, 6):  # the sizes do not depend on the luck of the hash
        again = image_sets(split_snapshot(image_rows(images), ref_val_ratios=ratios, seed=seed))
        assert (again["train"], again["ref"], again["val"]) == expected, seed


def test_forty_images_thousand_annotations_has_a_ref_set() -> None:
    """Bug pinned: the seed's first example on a MERMAID-only lake of 40 images (1,000 annotations)."""
    result = split_snapshot(image_rows(40), seed=0)
    counts = result.counts()
    assert counts == {"train": 800, "ref": 100, "val": 100}


def test_same_inputs_same_split_whatever_the_row_order() -> None:
    """Bug pinned: a split that depends on row order, Python's salted hash() or global RNG state."""
    rows = image_rows(60, points=10, classes=6, seed=3)
    a = split_snapshot(rows, ref_val_ratios=(0.1, 0.2), seed=5)
    b = split_snapshot(rows.sample(fraction=1.0, shuffle=True, seed=11), ref_val_ratios=(0.1, 0.2), seed=5)
    joined = a.rows.join(b.rows, on="annotation_id", suffix="_b")
    assert joined.height == rows.height and (joined["split"] == joined["split_b"]).all()
    c = split_snapshot(rows, ref_val_ratios=(0.1, 0.2), seed=6)
    assert (a.rows["split"] != c.rows.join(a.rows, on="annotation_id").select("split")["split"]).any()


def test_rare_classes_land_in_train_and_ref() -> None:
    """Bug pinned: a class on only two or three images (all hashed into train, or into val) was dropped
    as too rare although it could be trained and calibrated; stratifying by each image's rarest class
    puts one image in train and the next in ref."""
    rows = image_rows(30, points=10, classes=3, seed=1)
    rare = []
    for i, (cls, count) in enumerate((("zz_two", 2), ("zz_three", 3), ("zz_five", 5))):
        for j in range(count):
            image = f"rare{i}-{j}"
            rare.append(pl.DataFrame({
                "site": "mermaid", "source_id": "mermaid", "image_id": image,
                "row": pl.Series(range(4), dtype=pl.Int32), "col": pl.Series([0] * 4, dtype=pl.Int32),
                "benthic_attribute_id": [cls, cls, "ba0", "ba1"], "growth_form_id": "",
                "annotation_id": [f"{image}-{p}" for p in range(4)],
            }))
    rows = pl.concat([rows, *rare])
    for seed in range(8):
        result = split_snapshot(rows, ref_val_ratios=(0.1, 0.1), seed=seed)
        assert result.dropped_classes == {}, seed
        assert {"zz_two::", "zz_three::", "zz_five::"} <= set(result.classes)
        sets = image_sets(result)
        n = 30 + 10
        assert (sets["ref"], sets["val"]) == (round(n * 0.1), round(n * 0.1)) == (4, 4)
        per_class = (result.rows.filter(pl.col("class_key").str.starts_with("zz_"))
                     .group_by("class_key").agg(pl.col("split").unique().sort()))
        for key, sets_of_class in per_class.iter_rows():
            assert {"train", "ref"} <= set(sets_of_class), (seed, key, sets_of_class)


def test_a_class_on_one_image_is_still_dropped_and_counted() -> None:
    """One image cannot be in train and ref: that class is dropped (and counted), never trained."""
    rows = image_rows(20, points=10, classes=3)
    lone = pl.DataFrame({"site": "mermaid", "source_id": "mermaid", "image_id": "lone",
                         "row": pl.Series([0, 1], dtype=pl.Int32), "col": pl.Series([0, 0], dtype=pl.Int32),
                         "benthic_attribute_id": ["zz_lone", "ba0"], "growth_form_id": "",
                         "annotation_id": ["l0", "l1"]})
    result = split_snapshot(pl.concat([rows, lone]), seed=0)
    assert result.dropped_classes == {"zz_lone::": 1}


def test_points_mode_keeps_its_per_class_sizes() -> None:
    """Point-stratified mode is unchanged: per class round(n * val) val and round(n * ref) ref points."""
    rows = image_rows(40, points=25, classes=4)
    result = split_snapshot(rows, ref_val_ratios=(0.1, 0.25), seed=2, mode="points")
    per_class = result.rows.group_by("class_key").agg(
        pl.len().alias("n"), (pl.col("split") == "val").sum().alias("val"), (pl.col("split") == "ref").sum().alias("ref"))
    for n, val, ref in per_class.select("n", "val", "ref").rows():
        assert (val, ref) == (round(n * 0.25), round(n * 0.1))
