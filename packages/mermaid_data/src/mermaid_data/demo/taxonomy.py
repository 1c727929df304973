"""The demo's taxonomy: the real public MERMAID taxonomy (bundled), with the live API's quirks added.

Built from ``mermaid_data.taxonomy.load_bundled_taxonomy()`` (nothing read from the network):

- the 738 real benthic attributes (BAs), ordered parents first (a depth-first walk from the 12 roots,
  children by name), and the 11 real growth forms (GFs), with their real UUIDs and names;
- the 711 real CoralNet labels of the mapping, each weighted by its real public annotation count (label 82
  "Turf algae" alone is 28% of CoralNet rows), most frequent first;
- the live API's quirks: a few CoralNet label ids that the mapping does not know (the generator puts them
  on ~3% of CoralNet rows), and one label id that the mapping lists twice with different BA/GF pairs
  (``DOUBLE_MAPPED``);
- MERMAID BA weights: a share per root typical of MERMAID's photo-quadrat surveys (more hard coral than
  CoralNet's public sources), split inside each root by the CoralNet frequency of the BA's labels (plus a
  small floor, so every BA can occur); a growth form on most hard-coral rows, drawn from the growth forms
  the CoralNet labels of that BA name (e.g. Acropora mostly branching or tabular) mixed with an overall
  growth-form mix. MERMAID's missing growth form stays the literal ``'None'`` in its parquet (written by
  the generator).
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from mermaid_data.taxonomy import load_bundled_taxonomy

__all__ = [
    "DOUBLE_MAPPED",
    "BenthicAttribute",
    "CoralNetLabel",
    "GrowthForm",
    "Region",
    "Taxonomy",
    "build_taxonomy",
    "demo_uuid",
]

#: Namespace of the UUIDs the demo makes up itself (regions, choices, its extra label mapping).
DEMO_NAMESPACE = uuid.UUID("3d8c6a52-9f0e-4c1b-8a57-2e6f4b1d9c30")

#: The CoralNet label the demo's mapping lists twice: (label id, second BA name, second GF name or None).
#: Label 59 "Acropora" (0.9% of public CoralNet annotations) is mapped to Acropora; the second pair adds a
#: growth form, the kind of disagreement the live API has. The lake's rule resolves it to the first.
DOUBLE_MAPPED = ("59", "Acropora", "Branching")

# CoralNet label ids in use that MERMAID's mapping does not know (not in the bundled mapping).
_UNMAPPED_LABELS: tuple[tuple[int, str], ...] = (
    (9901, "Unclear"),
    (9902, "Off image"),
    (9903, "Diver"),
    (9904, "Bleached unknown"),
    (9905, "Mixed substrate"),
    (9906, "Custom label A"),
    (9907, "Custom label B"),
    (9908, "Transect line (local)"),
)

# Share of MERMAID rows per root (sums to 1).
_MERMAID_ROOT_SHARE = {
    "Hard coral": 0.37,
    "Turf algae": 0.20,
    "Macroalgae": 0.10,
    "Crustose coralline algae": 0.07,
    "Sand": 0.06,
    "Rubble": 0.06,
    "Soft coral": 0.05,
    "Other invertebrates": 0.03,
    "Bare substrate": 0.02,
    "Seagrass": 0.02,
    "Cyanobacteria": 0.01,
    "Other": 0.01,
}
#: Inside a root, this share of its MERMAID rows is spread evenly over its BAs (so every BA can occur).
_MERMAID_FLOOR = 0.02
#: Probability that a MERMAID row of a BA under this root carries a growth form.
_MERMAID_GF_PROBABILITY = {"Hard coral": 0.78, "Soft coral": 0.1, "Other invertebrates": 0.05}
#: A BA's growth forms: this share from its own GF labels' frequencies (when it has any), the rest overall.
_OWN_GF_SHARE = 0.7
_MERMAID_GF_WEIGHTS = {
    "Branching": 0.22,
    "Massive": 0.20,
    "Encrusting": 0.15,
    "Plates or tables": 0.10,
    "Corymbose": 0.07,
    "Submassive": 0.07,
    "Foliose": 0.06,
    "Digitate": 0.05,
    "Columnar": 0.03,
    "Mushroom coral": 0.03,
    "Arborescent": 0.02,
}

_REGIONS: tuple[tuple[str, float], ...] = (
    ("Indo-Pacific", 0.78),
    ("Western Atlantic", 0.17),
    ("Eastern Pacific", 0.05),
)


def demo_uuid(kind: str, key: str) -> str:
    """A stable UUID (string) for an item the demo makes up, of ``kind`` named by ``key``."""
    return str(uuid.uuid5(DEMO_NAMESPACE, f"{kind}:{key}"))


@dataclass(frozen=True)
class BenthicAttribute:
    index: int
    id: str
    name: str
    parent_index: int  # -1 for a root
    root_index: int  # index (into the BA tuple) of this BA's root
    depth: int  # 1 for roots


@dataclass(frozen=True)
class GrowthForm:
    index: int
    id: str
    name: str


@dataclass(frozen=True)
class Region:
    index: int
    id: str
    name: str
    weight: float


@dataclass(frozen=True)
class CoralNetLabel:
    """A CoralNet label. ``ba_index``/``gf_index`` are -1 when unmapped / without growth form."""

    index: int
    label_id: int
    name: str
    short_code: str
    ba_index: int
    gf_index: int
    mapped: bool
    public_count: int  # annotations on public CoralNet (0 for the unmapped ones)


@dataclass(frozen=True, eq=False)
class Taxonomy:
    benthic_attributes: tuple[BenthicAttribute, ...]
    growth_forms: tuple[GrowthForm, ...]
    regions: tuple[Region, ...]
    #: Mapped labels first (``mapped=True``, most frequent first), then the unmapped ones.
    labels: tuple[CoralNetLabel, ...]
    #: Index into ``labels`` of the label mapped twice, and its second (ba_index, gf_index) pair.
    double_mapped: tuple[int, int, int]
    #: Probability of each mapped label on a CoralNet row (sums to 1).
    label_weights: np.ndarray
    #: Probability of each BA on a MERMAID row (sums to 1).
    mermaid_ba_weights: np.ndarray
    #: Probability that a MERMAID row with this BA carries a growth form.
    mermaid_gf_probability: np.ndarray
    #: ``[n_ba, n_gf]``: the growth form of a MERMAID row with this BA, when it has one (rows sum to 1).
    mermaid_gf_weights: np.ndarray
    #: The bundled label mapping records (API-shaped), to which the demo adds its quirk.
    _mapping_records: tuple[dict[str, Any], ...] = ()

    @property
    def mapped_labels(self) -> tuple[CoralNetLabel, ...]:
        return tuple(label for label in self.labels if label.mapped)

    @property
    def unmapped_labels(self) -> tuple[CoralNetLabel, ...]:
        return tuple(label for label in self.labels if not label.mapped)

    def benthic_attribute_records(self) -> list[dict[str, Any]]:
        """BA results as the MERMAID API serves them (plus extra keys a reader must ignore)."""
        return [
            {
                "id": ba.id,
                "name": ba.name,
                "parent": None if ba.parent_index < 0 else self.benthic_attributes[ba.parent_index].id,
                "status": 90,
                "regions": [region.id for region in self.regions],
                "life_histories": [],
            }
            for ba in self.benthic_attributes
        ]

    def growth_form_records(self) -> list[dict[str, Any]]:
        return [{"id": gf.id, "name": gf.name} for gf in self.growth_forms]

    def label_mapping_records(self) -> list[dict[str, Any]]:
        """CoralNet label mappings as ``classification/labelmappings/`` serves them: the bundled ones
        and the demo's second mapping of ``DOUBLE_MAPPED`` right after the first."""
        index, ba_index, gf_index = self.double_mapped
        label = self.labels[index]
        ba = self.benthic_attributes[ba_index]
        gf = self.growth_forms[gf_index] if gf_index >= 0 else None
        extra = {
            "id": demo_uuid("labelmapping", f"{label.label_id}:{ba.id}:{gf.id if gf else ''}"),
            "benthic_attribute_id": ba.id,
            "benthic_attribute_name": ba.name,
            "growth_form_id": gf.id if gf else None,
            "growth_form_name": gf.name if gf else None,
            "provider": "CoralNet",
            "provider_id": str(label.label_id),
            "provider_label": label.name,
        }
        records: list[dict[str, Any]] = []
        for record in self._mapping_records:
            records.append(dict(record))
            if record["provider_id"] == str(label.label_id):
                records.append(extra)
        return records


def _short_code(name: str, used: set[str]) -> str:
    words = "".join(c if c.isalnum() else " " for c in name).split()
    base = (words[0][:4] + "".join(w[:3] for w in words[1:3])).upper() if words else "LBL"
    code, n = base, 2
    while code in used:
        code = f"{base}{n}"
        n += 1
    used.add(code)
    return code


def _ordered_tree(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int, int, int]]:
    """``(row, parent_position, root_position, depth)`` in depth-first order (parents before children)."""
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        children[row["parent_id"]].append(row)
    out: list[tuple[dict[str, Any], int, int, int]] = []

    def walk(row: dict[str, Any], parent: int, root: int, depth: int) -> None:
        position = len(out)
        out.append((row, parent, position if parent < 0 else root, depth))
        for child in sorted(children[row["id"]], key=lambda r: (r["name"], r["id"])):
            walk(child, position, position if parent < 0 else root, depth + 1)

    for root in sorted(children[None], key=lambda r: (r["name"], r["id"])):
        walk(root, -1, -1, 1)
    return out


@functools.cache
def build_taxonomy() -> Taxonomy:
    """The demo taxonomy (built once per process; identical on every call and every machine)."""
    bundle = load_bundled_taxonomy()
    tax = bundle.taxonomy

    # --- benthic attributes, growth forms, regions -------------------------------------------------
    ordered = _ordered_tree(tax.benthic_attributes.to_pylist())
    bas = tuple(
        BenthicAttribute(index=i, id=row["id"], name=row["name"], parent_index=parent, root_index=root, depth=depth)
        for i, (row, parent, root, depth) in enumerate(ordered)
    )
    ba_by_id = {ba.id: ba.index for ba in bas}
    gf_rows = sorted(tax.growth_forms.to_pylist(), key=lambda r: r["name"])
    gfs = tuple(GrowthForm(index=i, id=r["id"], name=r["name"]) for i, r in enumerate(gf_rows))
    gf_by_id = {gf.id: gf.index for gf in gfs}
    gf_by_name = {gf.name: gf.index for gf in gfs}
    regions = tuple(
        Region(index=i, id=demo_uuid("region", name), name=name, weight=weight)
        for i, (name, weight) in enumerate(_REGIONS)
    )

    # --- CoralNet labels: the mapping's, most frequent first; then the unmapped ones ---------------
    mapping_rows = tax.label_mappings.to_pylist()
    first_mapping: dict[str, dict[str, Any]] = {}
    for row in mapping_rows:
        first_mapping.setdefault(row["provider_id"], row)
    counts = bundle.label_counts
    order = sorted(first_mapping, key=lambda label: (-counts.get(label, 0), int(label)))
    used_codes: set[str] = set()
    labels: list[CoralNetLabel] = []
    for label_id in order:
        row = first_mapping[label_id]
        labels.append(
            CoralNetLabel(
                index=len(labels),
                label_id=int(label_id),
                name=row["provider_label"],
                short_code=_short_code(row["provider_label"], used_codes),
                ba_index=ba_by_id[row["benthic_attribute_id"]],
                gf_index=gf_by_id[row["growth_form_id"]] if row["growth_form_id"] else -1,
                mapped=True,
                public_count=counts.get(label_id, 0),
            )
        )
    known_ids = {int(label) for label in first_mapping}
    for label_id, name in _UNMAPPED_LABELS:
        if label_id in known_ids:  # pragma: no cover - a refreshed bundle would have to claim 99xx ids
            raise ValueError(f"demo unmapped label id {label_id} is in the bundled mapping")
        labels.append(
            CoralNetLabel(
                index=len(labels), label_id=label_id, name=name, short_code=_short_code(name, used_codes),
                ba_index=-1, gf_index=-1, mapped=False, public_count=0,
            )
        )
    mapped_counts = np.array([label.public_count for label in labels if label.mapped], dtype=np.float64)
    label_weights = (mapped_counts + 1.0) / (mapped_counts + 1.0).sum()

    label_index = {str(label.label_id): label.index for label in labels}
    double = (label_index[DOUBLE_MAPPED[0]], next(ba.index for ba in bas if ba.name == DOUBLE_MAPPED[1]),
              gf_by_name[DOUBLE_MAPPED[2]] if DOUBLE_MAPPED[2] else -1)

    # --- MERMAID weights: root shares, split by the CoralNet frequency of each BA's labels ---------
    n_ba, n_gf = len(bas), len(gfs)
    ba_mass = np.zeros(n_ba)
    gf_mass = np.zeros((n_ba, n_gf))
    for label in labels:
        if label.mapped:
            ba_mass[label.ba_index] += label.public_count
            if label.gf_index >= 0:
                gf_mass[label.ba_index, label.gf_index] += label.public_count
    ba_weights = np.zeros(n_ba)
    gf_probability = np.zeros(n_ba)
    roots = {ba.name: ba.index for ba in bas if ba.parent_index < 0}
    for root_name, share in _MERMAID_ROOT_SHARE.items():
        members = np.array([ba.index for ba in bas if ba.root_index == roots[root_name]])
        mass = ba_mass[members]
        within = (1 - _MERMAID_FLOOR) * mass / mass.sum() + _MERMAID_FLOOR / len(members)
        ba_weights[members] = share * within
        gf_probability[members] = _MERMAID_GF_PROBABILITY.get(root_name, 0.0)
    ba_weights /= ba_weights.sum()
    overall = np.array([_MERMAID_GF_WEIGHTS[gf.name] for gf in gfs])
    overall /= overall.sum()
    own_total = gf_mass.sum(axis=1, keepdims=True)
    own = np.divide(gf_mass, own_total, out=np.zeros_like(gf_mass), where=own_total > 0)
    gf_weights = np.where(own_total > 0, _OWN_GF_SHARE * own + (1 - _OWN_GF_SHARE) * overall, overall)

    _, _, mapping_records = bundle.api_payloads()
    return Taxonomy(
        benthic_attributes=bas,
        growth_forms=gfs,
        regions=regions,
        labels=tuple(labels),
        double_mapped=double,
        label_weights=label_weights,
        mermaid_ba_weights=ba_weights,
        mermaid_gf_probability=gf_probability,
        mermaid_gf_weights=gf_weights,
        _mapping_records=tuple(mapping_records),
    )
