"""Names of a model's classes: each class key ``"{ba_id}::{gf_id}"`` beside its benthic attribute and growth form names.

``ClassLabels`` holds, per class key, the benthic attribute and growth form ids and names and the display
name (``"Acropora / Branching"``, or ``"Porites"`` without a growth form). The names come from a taxonomy
(``TaxonomyNames``): the lake's tables (at a snapshot's pinned versions, ``sql/train/taxonomy_names.sql``)
or the taxonomy bundled with ``mermaid_data`` (``load_bundled_taxonomy``). An id that the taxonomy does not
know keeps a null name, and its display name is the class key itself, so a table never shows a blank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

#: The columns of ``ClassLabels.frame()`` (also ``classes.csv`` in a run folder), in order.
LABEL_COLUMNS = ("class_key", "benthic_attribute_id", "benthic_attribute_name", "growth_form_id", "growth_form_name",
                 "name")


def split_key(key: str) -> tuple[str, str]:
    """``(ba_id, gf_id)`` of a class key (``gf_id`` is ``''`` without a growth form)."""
    ba, _, gf = str(key).partition("::")
    return ba, gf


def display_name(ba_name: str | None, gf_name: str | None, key: str) -> str:
    """``"BA / GF"``, ``"BA"`` without a growth form, the key when the attribute has no name."""
    if not ba_name:
        return key
    return f"{ba_name} / {gf_name}" if gf_name else ba_name


@dataclass(frozen=True)
class ClassLabels:
    """Per class key (in the model's order): BA and GF ids and names, and the display name."""

    keys: tuple[str, ...]
    ba_ids: tuple[str, ...]
    ba_names: tuple[str | None, ...]
    gf_ids: tuple[str, ...]
    gf_names: tuple[str | None, ...]

    @property
    def names(self) -> list[str]:
        return [display_name(b, g, k) for b, g, k in zip(self.ba_names, self.gf_names, self.keys)]

    def __len__(self) -> int:
        return len(self.keys)

    def frame(self) -> pl.DataFrame:
        """One row per class: ``LABEL_COLUMNS``."""
        return pl.DataFrame({"class_key": list(self.keys), "benthic_attribute_id": list(self.ba_ids),
                             "benthic_attribute_name": list(self.ba_names), "growth_form_id": list(self.gf_ids),
                             "growth_form_name": list(self.gf_names), "name": self.names},
                            schema={c: pl.String for c in LABEL_COLUMNS})

    def arrays(self) -> dict[str, np.ndarray]:
        """Column name -> object array over the classes (what ``model.ranking`` indexes by class)."""
        return {name: np.asarray(values, dtype=object) for name, values in self.frame().to_dict(as_series=False).items()}

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, keys: Sequence[str] | None = None) -> ClassLabels:
        """From a ``frame()`` (e.g. a run's ``classes.csv``); ``keys`` picks and orders the classes."""
        by_key = {row["class_key"]: row for row in frame.iter_rows(named=True)}
        keys = [str(k) for k in (keys if keys is not None else frame["class_key"].to_list())]
        rows = [by_key.get(k) or {} for k in keys]
        ba_gf = [split_key(k) for k in keys]
        return cls(tuple(keys), tuple(b for b, _ in ba_gf), tuple(r.get("benthic_attribute_name") or None for r in rows),
                   tuple(g for _, g in ba_gf), tuple(r.get("growth_form_name") or None for r in rows))

    def fill(self, other: ClassLabels | None) -> ClassLabels:
        """These labels, with the names they lack taken from ``other`` (same keys in any order)."""
        if other is None:
            return self
        ba = dict(zip(other.ba_ids, other.ba_names))
        gf = dict(zip(other.gf_ids, other.gf_names))
        return ClassLabels(self.keys, self.ba_ids, tuple(n or ba.get(i) for n, i in zip(self.ba_names, self.ba_ids)),
                           self.gf_ids, tuple(n or gf.get(i) or None for n, i in zip(self.gf_names, self.gf_ids)))


@dataclass(frozen=True)
class TaxonomyNames:
    """Benthic attribute and growth form names by id, and where they came from."""

    benthic_attributes: dict[str, str]
    growth_forms: dict[str, str]
    source: str

    def labels(self, keys: Sequence[str]) -> ClassLabels:
        keys = [str(k) for k in keys]
        ba_gf = [split_key(k) for k in keys]
        return ClassLabels(tuple(keys), tuple(b for b, _ in ba_gf),
                           tuple(self.benthic_attributes.get(b) for b, _ in ba_gf), tuple(g for _, g in ba_gf),
                           tuple(self.growth_forms.get(g) if g else None for _, g in ba_gf))

    @classmethod
    def from_lake(cls, lake, versions: dict[str, int] | None = None) -> TaxonomyNames:
        """The lake's taxonomy at ``versions`` (a snapshot's pinned input versions), else the current one."""
        from mermaid_data.sqlfiles import load_sql

        con = lake.connect(versions)
        try:
            rows = con.execute(load_sql("train/taxonomy_names")).fetchall()
        finally:
            con.close()
        return cls({i: n for kind, i, n in rows if kind == "ba"}, {i: n for kind, i, n in rows if kind == "gf"},
                   f"the lake {lake.uri}")

    @classmethod
    def bundled(cls) -> TaxonomyNames:
        """The MERMAID taxonomy shipped with ``mermaid_data`` (no lake needed)."""
        from mermaid_data.taxonomy import BUNDLE_DIR, load_bundled_taxonomy

        taxonomy = load_bundled_taxonomy().taxonomy
        ba = taxonomy.benthic_attributes
        gf = taxonomy.growth_forms
        return cls(dict(zip(ba.column("id").to_pylist(), ba.column("name").to_pylist())),
                   dict(zip(gf.column("id").to_pylist(), gf.column("name").to_pylist())),
                   f"the bundled taxonomy ({BUNDLE_DIR})")


__all__ = ["LABEL_COLUMNS", "ClassLabels", "TaxonomyNames", "display_name", "split_key"]
