"""Class-aware subsampling of the train set: hand-checked quotas, the rows SQL keeps, parsing and errors."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest
from mermaid_train.errors import TrainConfigError
from mermaid_train.split import Subsample, quotas, subsample_train


@pytest.mark.parametrize(("strategy", "total", "minimum", "expected"), [
    # classes a..d with 100, 50, 10 and 3 train rows; d is under min_per_class=5 and dropped
    ("balanced", 100, 5, [45, 45, 10, 0]),  # q = 45: 45 + 45 + 10 = 100
    ("balanced", 101, 5, [46, 45, 10, 0]),  # q = 45 leaves one row: the first capped class (a) gets it
    ("balanced", 40, 5, [15, 15, 10, 0]),  # c keeps its 10 (under the cap); q = 15 for a and b
    ("balanced", 500, 5, [100, 50, 10, 0]),  # more than there is: everything eligible
    ("balanced", 100, 0, [44, 43, 10, 3]),  # d kept: q = 43 (43+43+10+3 = 99), a gets the last row
    ("stratified", 100, 5, [63, 31, 6, 0]),  # 62.5, 31.25, 6.25: floors 99, the largest remainder (a) +1
    ("stratified", 16, 5, [10, 5, 1, 0]),  # 10, 5, 1 exactly
    ("stratified", 15, 5, [9, 5, 1, 0]),  # 9.375, 4.6875, 0.9375: floors 13; c (.9375) then b (.6875) +1
])
def test_quotas_golden(strategy: str, total: int, minimum: int, expected: list[int]) -> None:
    got = quotas(np.array([100, 50, 10, 3]), Subsample(strategy, total, minimum))
    assert got.tolist() == expected
    assert got.sum() == min(total, sum(n for n in (100, 50, 10, 3) if n >= max(minimum, 1)))


def _rows() -> pl.DataFrame:
    """Train rows of three classes (60 / 30 / 4) plus ref and val rows that must be left alone."""
    keys = ["a::"] * 60 + ["b::x"] * 30 + ["c::"] * 4
    splits = ["train"] * 94
    keys += ["a::", "b::x", "c::", "a::"]
    splits += ["ref", "ref", "val", "val"]
    return pl.DataFrame({"class_key": keys, "split": splits,
                         "annotation_id": [f"ann-{i:03d}" for i in range(len(keys))]})


def test_rows_kept_are_each_classs_smallest_md5() -> None:
    """Golden case: the kept rows are, per class, the first `quota` by md5(annotation_id), computed here in Python."""
    rows = _rows()
    result = subsample_train(rows, Subsample("balanced", 40, 5), ["a::", "b::x", "c::"])
    counts = result.counts.to_dicts()
    assert [(c["class_key"], c["before"], c["quota"], c["kept"], c["dropped_below_min"]) for c in counts] == [
        ("a::", 60, 20, 20, False), ("b::x", 30, 20, 20, False), ("c::", 4, 0, 0, True)]
    assert result.dropped_classes == {"c::": 4}
    expected = []
    for key in ("a::", "b::x"):
        mine = [(hashlib.md5(a.encode()).hexdigest(), a, i) for i, (k, s, a) in enumerate(rows.iter_rows())
                if k == key and s == "train"]
        expected += [i for _h, _a, i in sorted(mine)[:20]]
    assert result.kept.tolist() == sorted(expected)
    assert set(rows["split"].gather(result.kept)) == {"train"}  # ref and val are never touched


def test_subsample_is_nested_and_order_independent() -> None:
    """Bug pinned: rows chosen by position (a reshuffled snapshot, or a bigger total, keeping other rows)."""
    rows = _rows()
    small = subsample_train(rows, Subsample("stratified", 30), ["a::", "b::x", "c::"])
    big = subsample_train(rows, Subsample("stratified", 60), ["a::", "b::x", "c::"])
    ids = rows["annotation_id"]
    assert set(ids.gather(small.kept)) < set(ids.gather(big.kept))
    shuffled = rows.sample(fraction=1.0, shuffle=True, seed=3)
    again = subsample_train(shuffled, Subsample("stratified", 30), ["a::", "b::x", "c::"])
    assert set(shuffled["annotation_id"].gather(again.kept)) == set(ids.gather(small.kept))


@pytest.mark.parametrize(("text", "expected"), [
    ("balanced:100000", Subsample("balanced", 100000, 0)),
    ("stratified:5_000:20", Subsample("stratified", 5000, 20)),
])
def test_parse(text: str, expected: Subsample) -> None:
    assert Subsample.parse(text) == expected
    assert Subsample.parse(str(expected)) == expected


@pytest.mark.parametrize("bad", ["balanced", "even:100", "balanced:-5", "balanced:0", "balanced:10:x", ""])
def test_bad_subsample_specs(bad: str) -> None:
    with pytest.raises(TrainConfigError) as info:
        Subsample.parse(bad)
    assert "Fix:" in str(info.value) and "balanced:N" in str(info.value)


@pytest.mark.parametrize("made", [Subsample("odd", 10), Subsample("balanced", 0), Subsample("balanced", 5, -1),
                                  Subsample("balanced", True)])
def test_bad_subsample_objects(made: Subsample) -> None:
    with pytest.raises(TrainConfigError):
        made.validate()
