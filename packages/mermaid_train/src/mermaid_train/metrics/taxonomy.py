"""The taxonomic split of a classifier's errors, using the lake's benthic-attribute tree.

Each class key is ``"{ba_id}::{gf_id}"``; each benthic attribute has a root group (the top of its parent
chain, ``sql/train/ba_roots.sql``). A wrong prediction is

- ``same_ba``: the right benthic attribute with the wrong growth form;
- ``same_root``: another attribute of the same root group (e.g. two hard corals), ``same_ba`` included;
- ``other_root``: an attribute of another root group (e.g. a hard coral called an alga).

``root_breakdown`` counts the same per true root group (the report's taxonomic view).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from mermaid_data.lake import Lake
from mermaid_data.sqlfiles import load_sql


@dataclass(frozen=True)
class Taxonomy:
    """Root group of each benthic attribute (``benthic_attribute_id``, ``root_id``, ``root_name``)."""

    roots: pl.DataFrame

    @classmethod
    def from_lake(cls, lake: Lake, versions: dict[str, int] | None = None) -> Taxonomy:
        """The tree of ``lake`` at ``versions`` (a snapshot's pinned input versions), else the current one."""
        con = lake.connect(versions)
        try:
            return cls(pl.from_arrow(con.execute(load_sql("train/ba_roots")).to_arrow_table()))
        finally:
            con.close()

    def class_roots(self, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ba, root)`` integer codes per class key; a BA missing from the tree is its own root."""
        ba = [c.split("::", 1)[0] for c in classes]
        known = dict(zip(self.roots["benthic_attribute_id"].to_list(), self.roots["root_id"].to_list()))
        roots = [known.get(b, b) for b in ba]
        return np.unique(ba, return_inverse=True)[1], np.unique(roots, return_inverse=True)[1]

    def root_names(self, classes: Sequence[str]) -> list[str]:
        known = dict(zip(self.roots["benthic_attribute_id"].to_list(), self.roots["root_name"].to_list()))
        return [known.get(c.split("::", 1)[0], c.split("::", 1)[0]) for c in classes]


def error_split(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], taxonomy: Taxonomy) -> dict[str, float]:
    """Shares of the errors that stay within the benthic attribute, within the root group, or cross groups."""
    ba, root = taxonomy.class_roots(classes)
    wrong = y_true != y_pred
    errors = int(wrong.sum())
    same_ba = int((wrong & (ba[y_true] == ba[y_pred])).sum())
    same_root = int((wrong & (root[y_true] == root[y_pred])).sum())
    n = len(y_true)
    share = (lambda k: k / errors) if errors else (lambda k: 0.0)
    return {
        "errors": float(errors),
        "error_same_ba_share": share(same_ba),
        "error_same_root_share": share(same_root),
        "error_other_root_share": share(errors - same_root),
        "error_other_root_rate": (errors - same_root) / n if n else 0.0,
    }


def root_confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], taxonomy: Taxonomy) -> pl.DataFrame:
    """Counts of (true root group, predicted root group) pairs, largest first."""
    names = np.asarray(taxonomy.root_names(classes), dtype=object)
    frame = pl.DataFrame({"true_root": names[y_true].astype(str), "predicted_root": names[y_pred].astype(str)})
    return frame.group_by("true_root", "predicted_root").len("annotations").sort(
        ["annotations", "true_root", "predicted_root"], descending=[True, False, False])


def root_breakdown(counts: np.ndarray, classes: Sequence[str], roots: Sequence[str]) -> pl.DataFrame:
    """Per true root group: its val points, and how many were right, a wrong growth form of the right
    attribute, another attribute of the same group, or a class of another group (from the confusion counts)."""
    counts = np.asarray(counts, dtype=np.int64)
    ba = np.asarray([c.split("::", 1)[0] for c in classes], dtype=object)
    root = np.asarray(list(roots), dtype=object)
    same_ba = ba[:, None] == ba[None, :]
    same_root = root[:, None] == root[None, :]
    diagonal = np.eye(len(classes), dtype=bool)
    per_class = {
        "correct": (counts * diagonal).sum(axis=1),
        "wrong_growth_form": (counts * (same_ba & ~diagonal)).sum(axis=1),
        "same_group": (counts * (same_root & ~same_ba)).sum(axis=1),
        "other_group": (counts * ~same_root).sum(axis=1),
    }
    frame = pl.DataFrame({"root_group": root.astype(str), "points": counts.sum(axis=1), **per_class})
    return (frame.group_by("root_group").agg(pl.all().sum())
            .filter(pl.col("points") > 0).sort(["points", "root_group"], descending=[True, False]))
