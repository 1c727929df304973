"""A synthetic, deterministic MERMAID taxonomy for the offline demo sources.

Nothing here is read from disk or the network: the tree, the growth forms and the CoralNet label mapping
are built from the constant tables below, so every demo (whatever its seed) shares one taxonomy and two
demos can be ingested into the same lake. The shape follows the real data (see the reference README):

- 12 real root benthic attributes (BAs) with generated children (mostly real genus names) and
  grandchildren (species), 3 levels, about 165 BAs;
- the 11 real growth form (GF) names;
- about 120 CoralNet labels (integer ids) mapped to a BA, some hard-coral labels also to a GF; exactly one
  label id is mapped twice with different BA/GF pairs (a quirk of the live API);
- a handful of CoralNet label ids that are *not* in the mapping (the generator puts them on ~3% of rows);
- long-tailed (Zipf-like) label weights with one dominant 'Turf algae' label (~25% of CoralNet rows), and
  BA / GF weights for the MERMAID rows (a growth form on ~30% of rows).

UUIDs are ``uuid5`` of a fixed namespace and the item's kind and path, so they never change.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

__all__ = [
    "BenthicAttribute",
    "CoralNetLabel",
    "GrowthForm",
    "Region",
    "Taxonomy",
    "build_taxonomy",
    "demo_uuid",
]

#: Namespace of every UUID in the demo taxonomy.
DEMO_NAMESPACE = uuid.UUID("3d8c6a52-9f0e-4c1b-8a57-2e6f4b1d9c30")

ROOT_NAMES: tuple[str, ...] = (
    "Hard coral",
    "Soft coral",
    "Macroalgae",
    "Turf algae",
    "Sand",
    "Rubble",
    "Bare substrate",
    "Crustose coralline algae",
    "Cyanobacteria",
    "Seagrass",
    "Other invertebrates",
    "Other",
)

GROWTH_FORM_NAMES: tuple[str, ...] = (
    "Arborescent",
    "Branching",
    "Columnar",
    "Corymbose",
    "Digitate",
    "Encrusting",
    "Foliose",
    "Massive",
    "Mushroom coral",
    "Plates or tables",
    "Submassive",
)

# root -> {child: [grandchild epithets or full names]}. A grandchild given as a single lower-case word is
# an epithet and becomes "<child> <epithet>".
_TREE: dict[str, dict[str, list[str]]] = {
    "Hard coral": {
        "Acropora": ["hyacinthus", "millepora", "cytherea", "digitifera", "palmata", "cervicornis"],
        "Porites": ["lobata", "lutea", "cylindrica", "rus", "astreoides"],
        "Pocillopora": ["damicornis", "verrucosa", "meandrina", "eydouxi"],
        "Montipora": ["capitata", "foliosa", "digitata", "aequituberculata"],
        "Favites": ["abdita", "pentagona"],
        "Dipsastraea": ["pallida", "speciosa"],
        "Goniastrea": ["retiformis", "edwardsi"],
        "Platygyra": ["daedalea", "sinensis"],
        "Pavona": ["varians", "decussata"],
        "Fungia": ["fungites"],
        "Seriatopora": ["hystrix"],
        "Stylophora": ["pistillata"],
        "Galaxea": ["fascicularis"],
        "Echinopora": ["lamellosa"],
        "Lobophyllia": ["hemprichii"],
        "Turbinaria": ["reniformis", "mesenterina"],
        "Millepora": ["platyphylla", "dichotoma"],
        "Isopora": ["palifera"],
        "Astreopora": ["myriophthalma"],
        "Cyphastrea": ["serailia"],
        "Leptastrea": ["purpurea"],
        "Diploastrea": ["heliopora"],
        "Orbicella": ["annularis", "faveolata"],
        "Siderastrea": ["siderea"],
        "Agaricia": ["agaricites"],
        "Pseudodiploria": ["strigosa"],
        "Colpophyllia": ["natans"],
    },
    "Soft coral": {
        "Sarcophyton": ["glaucum"],
        "Sinularia": ["flexibilis"],
        "Lobophytum": [],
        "Xenia": [],
        "Dendronephthya": [],
        "Cladiella": [],
        "Gorgonia": ["ventalina"],
    },
    "Macroalgae": {
        "Halimeda": ["opuntia", "macroloba", "tuna"],
        "Dictyota": ["bartayresiana", "menstrualis"],
        "Sargassum": ["polycystum"],
        "Padina": ["boryana"],
        "Caulerpa": ["racemosa", "serrulata"],
        "Lobophora": ["variegata"],
        "Galaxaura": [],
        "Amansia": [],
        "Ulva": [],
        "Codium": [],
        "Laurencia": [],
        "Chlorodesmis": [],
        "Asparagopsis": ["taxiformis"],
    },
    "Turf algae": {},
    "Sand": {},
    "Rubble": {},
    "Bare substrate": {},
    "Crustose coralline algae": {
        "Porolithon": ["onkodes"],
        "Lithophyllum": ["kotschyanum"],
        "Hydrolithon": [],
        "Sporolithon": [],
    },
    "Cyanobacteria": {"Lyngbya": ["majuscula"], "Symploca": []},
    "Seagrass": {
        "Thalassia": ["hemprichii", "testudinum"],
        "Halophila": ["ovalis"],
        "Halodule": ["uninervis"],
        "Enhalus": ["acoroides"],
        "Syringodium": ["isoetifolium"],
        "Cymodocea": ["rotundata"],
    },
    "Other invertebrates": {
        "Sponge": ["Xestospongia", "Cliona"],
        "Ascidian": [],
        "Zoanthid": ["Palythoa", "Zoanthus"],
        "Anemone": [],
        "Tridacna": ["maxima", "crocea"],
        "Diadema": ["setosum", "antillarum"],
        "Bivalve": [],
        "Hydroid": [],
        "Corallimorph": [],
        "Bryozoan": [],
    },
    "Other": {"Trash": [], "Unknown": [], "Shadow": [], "Tape": []},
}

_ROOT_CODES = {
    "Hard coral": "HC",
    "Soft coral": "SC",
    "Macroalgae": "MACRO",
    "Turf algae": "TURF",
    "Sand": "SAND",
    "Rubble": "RUB",
    "Bare substrate": "BARE",
    "Crustose coralline algae": "CCA",
    "Cyanobacteria": "CYAN",
    "Seagrass": "SG",
    "Other invertebrates": "OINV",
    "Other": "OTH",
}

# Labels that name a BA and a growth form: (label name, BA name, GF name).
_GF_LABELS: tuple[tuple[str, str, str], ...] = (
    ("Acropora branching", "Acropora", "Branching"),
    ("Acropora tabular", "Acropora", "Plates or tables"),
    ("Acropora corymbose", "Acropora", "Corymbose"),
    ("Acropora digitate", "Acropora", "Digitate"),
    ("Porites massive", "Porites", "Massive"),
    ("Porites branching", "Porites", "Branching"),
    ("Montipora encrusting", "Montipora", "Encrusting"),
    ("Montipora foliose", "Montipora", "Foliose"),
    ("Pavona foliose", "Pavona", "Foliose"),
    ("Millepora encrusting", "Millepora", "Encrusting"),
    ("Branching coral", "Hard coral", "Branching"),
    ("Massive coral", "Hard coral", "Massive"),
    ("Encrusting coral", "Hard coral", "Encrusting"),
    ("Foliose coral", "Hard coral", "Foliose"),
    ("Plate coral", "Hard coral", "Plates or tables"),
    ("Mushroom coral", "Hard coral", "Mushroom coral"),
    ("Submassive coral", "Hard coral", "Submassive"),
    ("Columnar coral", "Hard coral", "Columnar"),
    ("Digitate coral", "Hard coral", "Digitate"),
    ("Corymbose coral", "Hard coral", "Corymbose"),
    ("Arborescent coral", "Hard coral", "Arborescent"),
)

# Species-level BAs that also get a CoralNet label of their own.
_SPECIES_LABELS: tuple[str, ...] = (
    "Acropora hyacinthus",
    "Porites lobata",
    "Porites cylindrica",
    "Pocillopora damicornis",
    "Pocillopora verrucosa",
    "Montipora capitata",
    "Stylophora pistillata",
    "Seriatopora hystrix",
    "Orbicella annularis",
    "Orbicella faveolata",
    "Siderastrea siderea",
    "Agaricia agaricites",
    "Pseudodiploria strigosa",
    "Colpophyllia natans",
    "Millepora platyphylla",
    "Galaxea fascicularis",
)

# The one CoralNet label that the mapping lists twice: its second (BA, GF) pair.
_DOUBLE_MAPPED_LABEL = "Acropora tabular"
_DOUBLE_MAPPING_SECOND = ("Acropora hyacinthus", None)

# CoralNet labels in use that MERMAID's mapping does not know.
_UNMAPPED_LABEL_NAMES: tuple[str, ...] = (
    "Fish",
    "Transect line",
    "Framer",
    "Unclear",
    "Off image",
    "Diver",
    "Bleached unknown",
    "Mixed substrate",
    "Custom label A",
    "Custom label B",
)

# Most frequent CoralNet labels, most frequent first; the rest follow in definition order (Zipf ranks).
_LABEL_RANK_HEAD: tuple[str, ...] = (
    "Turf algae",
    "Hard coral",
    "Crustose coralline algae",
    "Sand",
    "Macroalgae",
    "Rubble",
    "Porites massive",
    "Acropora branching",
    "Bare substrate",
    "Soft coral",
    "Halimeda",
    "Dictyota",
    "Pocillopora",
    "Montipora encrusting",
    "Cyanobacteria",
    "Other invertebrates",
    "Sponge",
    "Acropora tabular",
    "Seagrass",
    "Porites",
)
_TOP_LABEL_SHARE = 0.25
_ZIPF_EXPONENT = 1.05

# Share of MERMAID rows per root (sums to 1) and how growth forms are attached to them.
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
_MERMAID_GF_PROBABILITY = {"Hard coral": 0.78, "Soft coral": 0.1, "Other invertebrates": 0.05}
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

_EPOCH = datetime(2023, 1, 10, 8, 0, 0, tzinfo=UTC)


def demo_uuid(kind: str, key: str) -> str:
    """A stable UUID (string) for a demo taxonomy item of ``kind`` named by ``key``."""
    return str(uuid.uuid5(DEMO_NAMESPACE, f"{kind}:{key}"))


def _timestamp(index: int, *, kind_offset_days: int = 0) -> str:
    moment = _EPOCH + timedelta(days=kind_offset_days, hours=7 * index, seconds=37 * index)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class BenthicAttribute:
    index: int
    id: str
    name: str
    parent_index: int  # -1 for a root
    root_index: int  # index (into the BA tuple) of this BA's root
    depth: int  # 1 for roots
    updated_on: str


@dataclass(frozen=True)
class GrowthForm:
    index: int
    id: str
    name: str
    updated_on: str


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


@dataclass(frozen=True, eq=False)
class Taxonomy:
    benthic_attributes: tuple[BenthicAttribute, ...]
    growth_forms: tuple[GrowthForm, ...]
    regions: tuple[Region, ...]
    #: Mapped labels first (``mapped=True``), then the unmapped ones.
    labels: tuple[CoralNetLabel, ...]
    #: Index into ``labels`` of the label mapped twice, and its second (ba_index, gf_index) pair.
    double_mapped: tuple[int, int, int]
    #: Probability of each label on a CoralNet row (mapped labels only; sums to 1).
    label_weights: np.ndarray
    #: Probability of each BA on a MERMAID row (sums to 1).
    mermaid_ba_weights: np.ndarray
    #: Probability that a MERMAID row with this BA carries a growth form.
    mermaid_gf_probability: np.ndarray
    #: Distribution of the growth form when there is one (sums to 1).
    mermaid_gf_weights: np.ndarray

    @property
    def mapped_labels(self) -> tuple[CoralNetLabel, ...]:
        return tuple(label for label in self.labels if label.mapped)

    @property
    def unmapped_labels(self) -> tuple[CoralNetLabel, ...]:
        return tuple(label for label in self.labels if not label.mapped)

    def benthic_attribute_records(self) -> list[dict[str, Any]]:
        """BA results as the MERMAID API serves them (plus extra keys a reader must ignore)."""
        records = []
        for ba in self.benthic_attributes:
            records.append(
                {
                    "id": ba.id,
                    "name": ba.name,
                    "parent": None if ba.parent_index < 0 else self.benthic_attributes[ba.parent_index].id,
                    "status": 90,
                    "regions": [region.id for region in self.regions],
                    "life_histories": [],
                    "created_on": _timestamp(ba.index, kind_offset_days=-30),
                    "updated_on": ba.updated_on,
                }
            )
        return records

    def growth_form_records(self) -> list[dict[str, Any]]:
        return [{"id": gf.id, "name": gf.name, "updated_on": gf.updated_on} for gf in self.growth_forms]

    def label_mapping_records(self) -> list[dict[str, Any]]:
        """CoralNet label mappings as ``classification/labelmappings/`` serves them."""
        records = []
        double_index, second_ba, second_gf = self.double_mapped
        for label in self.mapped_labels:
            pairs = [(label.ba_index, label.gf_index)]
            if label.index == double_index:
                pairs.append((second_ba, second_gf))
            for ba_index, gf_index in pairs:
                ba = self.benthic_attributes[ba_index]
                gf = self.growth_forms[gf_index] if gf_index >= 0 else None
                records.append(
                    {
                        "id": demo_uuid("labelmapping", f"{label.label_id}:{ba.id}:{gf.id if gf else ''}"),
                        "benthic_attribute_id": ba.id,
                        "benthic_attribute_name": ba.name,
                        "growth_form_id": gf.id if gf else None,
                        "growth_form_name": gf.name if gf else None,
                        "provider": "CoralNet",
                        "provider_id": str(label.label_id),
                        "provider_label": label.name,
                        "updated_on": _timestamp(label.index, kind_offset_days=200),
                    }
                )
        return records


def _short_code(name: str, used: set[str]) -> str:
    words = name.replace("-", " ").split()
    base = (words[0][:4] + "".join(w[:3] for w in words[1:])).upper() if words else "LBL"
    code = base
    n = 2
    while code in used:
        code = f"{base}{n}"
        n += 1
    used.add(code)
    return code


@functools.cache
def build_taxonomy() -> Taxonomy:
    """The demo taxonomy (built once, then cached; identical on every call and every machine)."""
    # --- benthic attributes -------------------------------------------------------------------------
    bas: list[BenthicAttribute] = []
    by_name: dict[str, int] = {}

    def add(name: str, parent_index: int, root_index: int, depth: int) -> int:
        if name in by_name:  # pragma: no cover - guarded by the constant tables
            raise ValueError(f"duplicate BA name {name!r}")
        index = len(bas)
        path = name if parent_index < 0 else f"{bas[parent_index].name}/{name}"
        bas.append(
            BenthicAttribute(
                index=index,
                id=demo_uuid("benthicattribute", path),
                name=name,
                parent_index=parent_index,
                root_index=index if parent_index < 0 else root_index,
                depth=depth,
                updated_on=_timestamp(index),
            )
        )
        by_name[name] = index
        return index

    for root_name in ROOT_NAMES:
        root = add(root_name, -1, -1, 1)
        for child, grandchildren in _TREE[root_name].items():
            child_index = add(child, root, root, 2)
            for grandchild in grandchildren:
                full = f"{child} {grandchild}" if grandchild.islower() else grandchild
                add(full, child_index, root, 3)

    # --- growth forms and regions ------------------------------------------------------------------
    gfs = tuple(
        GrowthForm(
            index=i, id=demo_uuid("growthform", name), name=name, updated_on=_timestamp(i, kind_offset_days=5)
        )
        for i, name in enumerate(GROWTH_FORM_NAMES)
    )
    gf_by_name = {gf.name: gf.index for gf in gfs}
    regions = tuple(
        Region(index=i, id=demo_uuid("region", name), name=name, weight=weight)
        for i, (name, weight) in enumerate(_REGIONS)
    )

    # --- CoralNet labels ---------------------------------------------------------------------------
    specs: list[tuple[str, int, int]] = []  # (label name, ba index, gf index)
    for ba in bas:
        if ba.depth <= 2:
            specs.append((ba.name, ba.index, -1))
    for label_name, ba_name, gf_name in _GF_LABELS:
        specs.append((label_name, by_name[ba_name], gf_by_name[gf_name]))
    for species in _SPECIES_LABELS:
        specs.append((species, by_name[species], -1))

    head = {name: rank for rank, name in enumerate(_LABEL_RANK_HEAD)}
    order = sorted(range(len(specs)), key=lambda i: (head.get(specs[i][0], len(head)), i))
    specs = [specs[i] for i in order]

    id_rng = np.random.default_rng(20240611)
    all_ids = id_rng.choice(np.arange(1, 3200), size=len(specs) + len(_UNMAPPED_LABEL_NAMES), replace=False)
    used_codes: set[str] = set()
    labels: list[CoralNetLabel] = []
    for i, (name, ba_index, gf_index) in enumerate(specs):
        code = _ROOT_CODES.get(name) if gf_index < 0 else None
        code = _short_code(name, used_codes) if code is None or code in used_codes else code
        used_codes.add(code)
        labels.append(
            CoralNetLabel(
                index=i,
                label_id=int(all_ids[i]),
                name=name,
                short_code=code,
                ba_index=ba_index,
                gf_index=gf_index,
                mapped=True,
            )
        )
    for j, name in enumerate(_UNMAPPED_LABEL_NAMES):
        i = len(labels)
        labels.append(
            CoralNetLabel(
                index=i,
                label_id=int(all_ids[len(specs) + j]),
                name=name,
                short_code=_short_code(name, used_codes),
                ba_index=-1,
                gf_index=-1,
                mapped=False,
            )
        )

    n_mapped = len(specs)
    ranks = np.arange(1, n_mapped, dtype=np.float64)
    tail = 1.0 / ranks**_ZIPF_EXPONENT
    top = tail.sum() * _TOP_LABEL_SHARE / (1.0 - _TOP_LABEL_SHARE)
    label_weights = np.concatenate([[top], tail])
    label_weights /= label_weights.sum()

    double_index = next(label.index for label in labels if label.name == _DOUBLE_MAPPED_LABEL)
    second_ba = by_name[_DOUBLE_MAPPING_SECOND[0]]
    second_gf = -1 if _DOUBLE_MAPPING_SECOND[1] is None else gf_by_name[_DOUBLE_MAPPING_SECOND[1]]

    # --- MERMAID weights ---------------------------------------------------------------------------
    ba_weights = np.zeros(len(bas))
    gf_probability = np.zeros(len(bas))
    for root_name, share in _MERMAID_ROOT_SHARE.items():
        root_index = by_name[root_name]
        members = [ba.index for ba in bas if ba.root_index == root_index]  # root first, then DFS order
        zipf = 1.0 / np.arange(1, len(members) + 1, dtype=np.float64)
        ba_weights[members] = share * zipf / zipf.sum()
        gf_probability[members] = _MERMAID_GF_PROBABILITY.get(root_name, 0.0)
    ba_weights /= ba_weights.sum()
    gf_weights = np.array([_MERMAID_GF_WEIGHTS[name] for name in GROWTH_FORM_NAMES])
    gf_weights /= gf_weights.sum()

    return Taxonomy(
        benthic_attributes=tuple(bas),
        growth_forms=gfs,
        regions=regions,
        labels=tuple(labels),
        double_mapped=(double_index, second_ba, second_gf),
        label_weights=label_weights,
        mermaid_ba_weights=ba_weights,
        mermaid_gf_probability=gf_probability,
        mermaid_gf_weights=gf_weights,
    )
