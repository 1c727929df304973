"""Confusion matrices people can read: classes in taxonomic order, the rare ones folded into "other".

- ``taxonomy_order``: class indices ordered by root group name, then class name, then key (a benthic
  attribute missing from the tree is its own group, named by its id).
- ``fold_confusion``: the ``top`` classes with the most val points (truth), in taxonomic order, and one
  ``other`` row and column holding every remaining class (what ``confusion_matrix.png`` shows; the
  counts keep their sum).
- ``confusion_table``: the full matrix in taxonomic order with names (``confusion_matrix.csv``): columns
  ``true_root``, ``true_class``, ``true_name``, then one column per predicted class headed by its name (the
  key appended where two classes share a name), in the same order as the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

DEFAULT_TOP = 30
OTHER = "other"


def taxonomy_order(classes: Sequence[str], names: Sequence[str], roots: Sequence[str] | None) -> np.ndarray:
    """Indices of ``classes`` sorted by (root group, name, key); without roots by (name, key)."""
    roots = list(roots) if roots is not None else [""] * len(classes)
    keys = sorted(range(len(classes)), key=lambda i: (roots[i].casefold(), names[i].casefold(), classes[i]))
    return np.asarray(keys, dtype=np.int64)


@dataclass(frozen=True)
class FoldedConfusion:
    """A confusion matrix of the top classes (taxonomic order) plus ``other``; rows truth, columns prediction."""

    keys: list[str]  # class keys; "" for other
    names: list[str]  # display names; "other (N classes)" last when folded
    roots: list[str]  # root group names; "" for other
    counts: np.ndarray  # [m, m]
    folded: int  # classes folded into other

    def frame(self) -> pl.DataFrame:
        """``true_root, true_class, true_name`` and one column per predicted label (by name)."""
        data: dict[str, list] = {"true_root": self.roots, "true_class": self.keys, "true_name": self.names}
        for j, name in enumerate(_unique(self.names, self.keys)):
            data[name] = self.counts[:, j].tolist()
        return pl.DataFrame(data)


def fold_confusion(counts: np.ndarray, classes: Sequence[str], names: Sequence[str], roots: Sequence[str] | None,
                   *, top: int = DEFAULT_TOP) -> FoldedConfusion:
    """The ``top`` classes by support (ties by taxonomic order) in taxonomic order; the rest summed as ``other``."""
    counts = np.asarray(counts, dtype=np.int64)
    k = len(classes)
    order = taxonomy_order(classes, names, roots)
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    support = counts.sum(axis=1)
    by_support = sorted(range(k), key=lambda i: (-support[i], rank[i]))
    kept_set = set(by_support[: max(1, top)]) if k > top else set(range(k))
    kept = [int(i) for i in order if i in kept_set]
    folded = k - len(kept)
    root_list = list(roots) if roots is not None else [""] * k
    out_keys = [classes[i] for i in kept]
    out_names = [names[i] for i in kept]
    out_roots = [root_list[i] for i in kept]
    if not folded:
        return FoldedConfusion(out_keys, out_names, out_roots, counts[np.ix_(kept, kept)], 0)
    group = np.full(k, len(kept), dtype=np.int64)  # every folded class goes to the last index
    group[kept] = np.arange(len(kept))
    m = len(kept) + 1
    matrix = np.zeros((m, m), dtype=np.int64)
    np.add.at(matrix, (group[:, None], group[None, :]), counts)
    return FoldedConfusion([*out_keys, ""], [*out_names, f"{OTHER} ({folded} classes)"], [*out_roots, ""], matrix,
                           folded)


def confusion_table(counts: np.ndarray, classes: Sequence[str], names: Sequence[str],
                    roots: Sequence[str] | None) -> pl.DataFrame:
    """The full matrix with names, in taxonomic order (module docstring)."""
    order = taxonomy_order(classes, names, roots)
    root_list = list(roots) if roots is not None else [""] * len(classes)
    return FoldedConfusion([classes[i] for i in order], [names[i] for i in order], [root_list[i] for i in order],
                           np.asarray(counts)[np.ix_(order, order)], 0).frame()


def _unique(names: list[str], keys: list[str]) -> list[str]:
    """Column headers: the names, with the key appended to each name that occurs more than once."""
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    reserved = {"true_root", "true_class", "true_name"}
    return [f"{n} [{k}]" if seen[n] > 1 or n in reserved else n for n, k in zip(names, keys)]


__all__ = ["DEFAULT_TOP", "OTHER", "FoldedConfusion", "confusion_table", "fold_confusion", "taxonomy_order"]
