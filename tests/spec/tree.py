"""The spec mini-lake: a hand-made taxonomy four levels deep, small MERMAID and CoralNet sources.

The golden cases of ``tests/spec/cases/`` are checked against it (``tests/spec/cases/README.md`` has the
same legend with the worked-out counts). ``write_tree_sources(dest)`` writes the source tree with the
writers of ``tests/snapshot/golden.py``; ``ingest_tree(lake_uri, src)`` ingests it.

Taxonomy (13 BAs, depth in brackets; 3 GFs)::

    T01 Hard coral [1]                      T08 Algae [1]               T12 Sand [1]
      T02 Acroporidae [2]                     T09 Macroalgae [2]        T13 Other [1] (no annotation)
        T03 Acropora [3]                        T10 Halimeda [3]
          T04 Acropora cervicornis [4]        T11 Turf algae [2]
        T05 Montipora [3]
      T06 Poritidae [2]                     G1 Branching  G2 Massive  G3 Encrusting
        T07 Porites [3]

CoralNet label mapping: 201 -> T03/G1, 202 -> T07/G2, 203 -> T09, 204 -> T12, 205 -> T06; 999 unmapped.

MERMAID (16 rows, every image with features)::

    mimg-1: T04/G1, T04/G1, T03/G1, T03     mimg-3: T07, T06/G2, T10, T10
    mimg-2: T05/G3, T05/G3, T07/G2, T07/G2  mimg-4: T11, T11, T12, T01

CoralNet (11 rows, every image with features)::

    s21 2101: 201, 201, 202   2102: 203, 999   2103: 204      (3 images, 6 rows)
    s22 2201: 205, 202, 204                                   (1 image, 3 rows)
    s23 2301: 201             2302: 203                       (2 images, 2 rows)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mermaid_data.demo import write_api_pages
from mermaid_data.ingest import IngestReport, ingest
from mermaid_data.lake import Lake

from tests.snapshot.golden import MERMAID_PARQUET, taxonomy_payloads, write_coralnet_source, write_mermaid


def _t(n: int) -> str:
    return f"b7000000-0000-4000-8000-0000000000{n:02d}"


def _g(n: int) -> str:
    return f"6e000000-0000-4000-8000-00000000000{n}"


T = {n: _t(n) for n in range(1, 14)}
G1, G2, G3 = _g(1), _g(2), _g(3)
BA_NAMES = {
    T[1]: "Hard coral", T[2]: "Acroporidae", T[3]: "Acropora", T[4]: "Acropora cervicornis", T[5]: "Montipora",
    T[6]: "Poritidae", T[7]: "Porites", T[8]: "Algae", T[9]: "Macroalgae", T[10]: "Halimeda", T[11]: "Turf algae",
    T[12]: "Sand", T[13]: "Other",
}
BA_PARENTS = {T[2]: T[1], T[3]: T[2], T[4]: T[3], T[5]: T[2], T[6]: T[1], T[7]: T[6], T[9]: T[8], T[10]: T[9],
              T[11]: T[8]}
GF_NAMES = {G1: "Branching", G2: "Massive", G3: "Encrusting"}
#: alias -> id, for the cases' README and error fragments
ALIASES = {**{f"T{n:02d}": v for n, v in T.items()}, "G1": G1, "G2": G2, "G3": G3}

#: (mapping id, CoralNet label id, label name, BA, GF)
LABEL_MAPPINGS = [
    ("3b000000-0000-4000-8000-000000000201", "201", "Acropora branching", T[3], G1),
    ("3b000000-0000-4000-8000-000000000202", "202", "Porites massive", T[7], G2),
    ("3b000000-0000-4000-8000-000000000203", "203", "Macroalgae", T[9], ""),
    ("3b000000-0000-4000-8000-000000000204", "204", "Sand", T[12], ""),
    ("3b000000-0000-4000-8000-000000000205", "205", "Poritidae", T[6], ""),
]

_MERMAID_LABELS = {
    "mimg-1": [(T[4], G1), (T[4], G1), (T[3], G1), (T[3], "")],
    "mimg-2": [(T[5], G3), (T[5], G3), (T[7], G2), (T[7], G2)],
    "mimg-3": [(T[7], ""), (T[6], G2), (T[10], ""), (T[10], "")],
    "mimg-4": [(T[11], ""), (T[11], ""), (T[12], ""), (T[1], "")],
}
POINTS = ((10, 10), (10, 20), (20, 10), (20, 20))
#: (annotation id, image id, row, col, BA, GF)
MERMAID_ROWS = [
    (f"a7000000-0000-4000-8000-0000000000{i * 4 + j + 1:02d}", image, *POINTS[j], ba, gf)
    for i, (image, labels) in enumerate(_MERMAID_LABELS.items())
    for j, (ba, gf) in enumerate(labels)
]
#: source id -> [(image id, row, col, label id)]
CORALNET_ROWS = {
    "21": [(2101, 10, 10, 201), (2101, 20, 20, 201), (2101, 30, 30, 202), (2102, 10, 10, 203), (2102, 20, 20, 999),
           (2103, 10, 10, 204)],
    "22": [(2201, 10, 10, 205), (2201, 20, 20, 202), (2201, 30, 30, 204)],
    "23": [(2301, 10, 10, 201), (2302, 10, 10, 203)],
}


def write_tree_sources(dest: Path) -> Path:
    """Write the mini-lake's source tree under ``dest`` and return it."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    write_mermaid(dest, MERMAID_ROWS, tuple(_MERMAID_LABELS), ba_names=BA_NAMES, gf_names=GF_NAMES)
    for source, rows in CORALNET_ROWS.items():
        write_coralnet_source(dest, source, rows)
    bas, gfs, lms = taxonomy_payloads(LABEL_MAPPINGS, ba_names=BA_NAMES, ba_parents=BA_PARENTS, gf_names=GF_NAMES)
    write_api_pages(dest / "api", bas, gfs, lms, page_size=5)
    return dest


def ingest_tree(lake_uri: str | Path, src: Path) -> IngestReport:
    src = Path(src)
    return ingest(Lake.open(str(lake_uri)), mermaid_uri=str(src / MERMAID_PARQUET),
                  coralnet_uri=str(src / "coralnet"), api=str(src / "api"))
