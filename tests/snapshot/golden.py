"""The golden mini-lake: a hand-made taxonomy, MERMAID parquet and CoralNet sources small enough to check by hand.

Everything the snapshot golden cases (``tests/cases/``) are checked against is defined here, with names
next to the IDs (``tests/cases/README.md`` has the same legend). ``write_golden_sources(dest)`` writes the
source tree (``mermaid/``, ``coralnet/s<id>/``, ``api/``); ``ingest_golden(lake_uri, src)`` ingests it.

Taxonomy (7 BAs, 2 GFs)::

    B1 Hard coral  (root)          B4 Macroalgae (root)     B7 Bare substrate (root, no annotation uses it)
    B2 Acropora    (parent B1)     B5 Turf algae (root)
    B3 Porites     (parent B1)     B6 Sand       (root)
    G1 Branching   G2 Massive

CoralNet label mapping: 101 -> B2/G1, 102 -> B3/G2, 103 -> B4, 104 -> B5, 105 -> B6, 106 -> B1, and 107 listed
twice (B3/G1 and B2/G2; the resolution rule picks B2/G2 because B2 sorts first). Label 999 is unmapped.

MERMAID (9 rows, 3 images, all with features)::

    M01 mimg-1 r10 c10 B2/G1   M04 mimg-1 r20 c20 B6      M07 mimg-2 r20 c10 B3
    M02 mimg-1 r10 c20 B2/G2   M05 mimg-2 r10 c10 B4      M08 mimg-2 r20 c10 B5 (duplicate point of M07)
    M03 mimg-1 r20 c10 B3/G2   M06 mimg-2 r10 c20 B1      M09 mimg-3 r10 c10 B2/G1

CoralNet (12 rows; image 1202 of s12 has no feature file; s12 has a duplicate point)::

    s11 1101: (10,10) 101, (20,20) 102, (30,30) 999      s12 1201: (10,10) 104, (20,20) 105, (20,20) 105
    s11 1102: (10,10) 103, (20,20) 107                   s12 1202: (10,10) 106, (15,15) 101   [no features]
    s13 1301: (5,5) 101, (6,6) 102
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from mermaid_data.demo import write_api_pages
from mermaid_data.ingest import IngestReport, ingest
from mermaid_data.lake import Lake
from mermaid_data.snapshot import SnapshotSpec

CASES = Path(__file__).resolve().parents[1] / "cases"
MERMAID_PARQUET = "mermaid/mermaid_confirmed_annotations.parquet"
SPEC_PATHS = ("coralnet_sources_csv", "label_rollup_spec_csv", "included_labels_csv", "excluded_labels_csv")


def _ba(n: int) -> str:
    return f"ba000000-0000-4000-8000-00000000000{n}"


def _gf(n: int) -> str:
    return f"6f000000-0000-4000-8000-00000000000{n}"


B1, B2, B3, B4, B5, B6, B7 = (_ba(n) for n in range(1, 8))
G1, G2 = _gf(1), _gf(2)
NO_GF = ""
BA_NAMES = {B1: "Hard coral", B2: "Acropora", B3: "Porites", B4: "Macroalgae", B5: "Turf algae", B6: "Sand",
            B7: "Bare substrate"}
BA_PARENTS = {B2: B1, B3: B1}
GF_NAMES = {G1: "Branching", G2: "Massive"}
ALIASES = {**{v: f"B{i}" for i, v in enumerate((B1, B2, B3, B4, B5, B6, B7), start=1)}, G1: "G1", G2: "G2", "": "-"}

#: (mapping id, CoralNet label id, label name, BA, GF)
LABEL_MAPPINGS = [
    ("3a000000-0000-4000-8000-000000000101", "101", "Acropora branching", B2, G1),
    ("3a000000-0000-4000-8000-000000000102", "102", "Porites massive", B3, G2),
    ("3a000000-0000-4000-8000-000000000103", "103", "Macroalgae", B4, NO_GF),
    ("3a000000-0000-4000-8000-000000000104", "104", "Turf", B5, NO_GF),
    ("3a000000-0000-4000-8000-000000000105", "105", "Sand", B6, NO_GF),
    ("3a000000-0000-4000-8000-000000000106", "106", "Hard coral", B1, NO_GF),
    ("3a000000-0000-4000-8000-000000000171", "107", "Mystery coral", B3, G1),
    ("3a000000-0000-4000-8000-000000000172", "107", "Mystery coral", B2, G2),
]


def mermaid_id(n: int) -> str:
    return f"a0000000-0000-4000-8000-0000000000{n:02d}"


#: (annotation id, image id, row, col, BA, GF)
MERMAID_ROWS = [
    (mermaid_id(1), "mimg-1", 10, 10, B2, G1),
    (mermaid_id(2), "mimg-1", 10, 20, B2, G2),
    (mermaid_id(3), "mimg-1", 20, 10, B3, G2),
    (mermaid_id(4), "mimg-1", 20, 20, B6, NO_GF),
    (mermaid_id(5), "mimg-2", 10, 10, B4, NO_GF),
    (mermaid_id(6), "mimg-2", 10, 20, B1, NO_GF),
    (mermaid_id(7), "mimg-2", 20, 10, B3, NO_GF),
    (mermaid_id(8), "mimg-2", 20, 10, B5, NO_GF),
    (mermaid_id(9), "mimg-3", 10, 10, B2, G1),
]
MERMAID_IMAGES_WITH_FEATURES = ("mimg-1", "mimg-2", "mimg-3")

#: source id -> [(image id, row, col, label id)]
CORALNET_ROWS = {
    "11": [(1101, 10, 10, 101), (1101, 20, 20, 102), (1101, 30, 30, 999), (1102, 10, 10, 103), (1102, 20, 20, 107)],
    "12": [(1201, 10, 10, 104), (1201, 20, 20, 105), (1201, 20, 20, 105), (1202, 10, 10, 106), (1202, 15, 15, 101)],
    "13": [(1301, 5, 5, 101), (1301, 6, 6, 102)],
}
CORALNET_IMAGES_WITHOUT_FEATURES = {("12", 1202)}


def cn_id(source: str, image: int, row: int, col: int, occurrence: int = 1) -> str:
    """The lake's derived CoralNet annotation id (see sql/views/annotations.sql)."""
    return f"cn-s{source}-i{image}-r{row}-c{col}-{occurrence}"


# ------------------------------------------------------------------------------------------------
# writing the sources
# ------------------------------------------------------------------------------------------------


def taxonomy_payloads(
    mappings: list[tuple[str, str, str, str, str]] = LABEL_MAPPINGS,
    *,
    ba_names: dict[str, str] = BA_NAMES,
    ba_parents: dict[str, str] = BA_PARENTS,
    gf_names: dict[str, str] = GF_NAMES,
) -> tuple[list[dict], list[dict], list[dict]]:
    """API payloads (BAs, GFs, label mappings) of a taxonomy: the golden one unless others are given."""
    bas = [{"id": ba, "name": name, "parent": ba_parents.get(ba), "updated_on": "2024-01-01T00:00:00Z"}
           for ba, name in ba_names.items()]
    gfs = [{"id": gf, "name": name, "updated_on": "2024-01-01T00:00:00Z"} for gf, name in gf_names.items()]
    lms = [
        {"id": mid, "provider": "CoralNet", "provider_id": label, "provider_label": name,
         "benthic_attribute_id": ba, "benthic_attribute_name": ba_names[ba],
         "growth_form_id": gf or None, "growth_form_name": gf_names.get(gf),
         "updated_on": "2024-01-01T00:00:00Z"}
        for mid, label, name, ba, gf in mappings
    ]
    return bas, gfs, lms


def write_mermaid(dest: Path, rows=MERMAID_ROWS, images_with_features=MERMAID_IMAGES_WITH_FEATURES, *,
                  ba_names: dict[str, str] = BA_NAMES, gf_names: dict[str, str] = GF_NAMES) -> None:
    folder = dest / "mermaid"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime(2024, 5, 1, tzinfo=UTC)
    table = pa.table(
        {
            "id": [r[0] for r in rows],
            "image_id": [r[1] for r in rows],
            "point_id": [f"p-{r[0][-2:]}" for r in rows],
            "row": pa.array([r[2] for r in rows], pa.int64()),
            "col": pa.array([r[3] for r in rows], pa.int64()),
            "benthic_attribute_id": [r[4] for r in rows],
            "benthic_attribute_name": [ba_names[r[4]] for r in rows],
            # MERMAID writes a missing growth form as None/'None': both forms appear here
            "growth_form_id": [r[5] if r[5] else ("None" if i % 2 else None) for i, r in enumerate(rows)],
            "growth_form_name": [gf_names.get(r[5]) for r in rows],
            "updated_on": pa.array([stamp] * len(rows), pa.timestamp("us", tz="UTC")),
            "region_id": ["r1"] * len(rows),
            "region_name": ["Indo-Pacific"] * len(rows),
        }
    )
    pq.write_table(table, folder / "mermaid_confirmed_annotations.parquet")
    for image in images_with_features:
        (folder / f"{image}_featurevector").write_bytes(b"fv")


def write_coralnet_source(dest: Path, source: str, rows, *, missing_features=()) -> None:
    folder = dest / "coralnet" / f"s{source}"
    (folder / "features").mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Name", "Image ID", "Row", "Column", "Label ID"])
    for image, row, col, label in rows:
        writer.writerow([f"img{image}.jpg", image, row, col, label])
    (folder / "annotations.csv").write_text(out.getvalue(), encoding="utf-8")
    for image in sorted({r[0] for r in rows}):
        if image not in missing_features:
            (folder / "features" / f"i{image}.featurevector").write_bytes(b"fv")


def write_golden_sources(dest: Path) -> Path:
    """Write the golden source tree under ``dest`` and return it."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    write_mermaid(dest)
    for source, rows in CORALNET_ROWS.items():
        missing = {img for s, img in CORALNET_IMAGES_WITHOUT_FEATURES if s == source}
        write_coralnet_source(dest, source, rows, missing_features=missing)
    bas, gfs, lms = taxonomy_payloads()
    write_api_pages(dest / "api", bas, gfs, lms, page_size=4)
    return dest


def ingest_golden(lake_uri: str | Path, src: Path, *, coralnet_sources: list[str] | None = None) -> IngestReport:
    src = Path(src)
    return ingest(
        Lake.open(str(lake_uri)),
        mermaid_uri=str(src / MERMAID_PARQUET),
        coralnet_uri=str(src / "coralnet"),
        coralnet_sources=coralnet_sources,
        api=str(src / "api"),
    )


def copy_tree(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


# ------------------------------------------------------------------------------------------------
# golden cases (tests/cases/<name>/case.json)
# ------------------------------------------------------------------------------------------------


def load_case(name: str) -> tuple[dict, SnapshotSpec]:
    """``tests/cases/<name>/case.json`` and its SnapshotSpec (spec CSV paths relative to the case folder)."""
    folder = CASES / name
    case = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    kwargs = dict(case["spec"])
    for key in SPEC_PATHS:
        if key in kwargs:
            kwargs[key] = (folder / kwargs[key]).resolve()
    return case, SnapshotSpec(**kwargs, name=name)


def case_names(prefix: str) -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if p.is_dir() and p.name.startswith(prefix))
