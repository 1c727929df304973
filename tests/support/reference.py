"""Build MERMAID-API-shaped payloads from the real reference CSVs (read in place, never copied).

The reference folder is ``<repo>/../shared/reference/mermaid-api`` (``/work/shared/...`` beside
``/work/main``; CI clones keep a copy of ``shared/`` beside the repo the same way).
"""

from __future__ import annotations

import csv
import uuid
from pathlib import Path
from typing import Any

REFERENCE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "mermaid-api"

#: Namespace of the deterministic label-mapping ids (uuid5 over provider, label id, BA id, GF id).
MAPPING_NAMESPACE = uuid.UUID("6f1c3f0e-2d4b-5a8e-9c7d-3b2a1f0e9d8c")

BA_ROOT_NAMES = frozenset(
    {
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
    }
)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: reference CSV is missing; the tests read ../shared/reference/mermaid-api beside the repo"
        )
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _null(value: str, null: str) -> str | None:
    return None if value == null else value


def _iso(timestamp: str | None) -> str | None:
    """``2024-03-08 02:50:44.311969+00`` (Postgres text) -> ``2024-03-08T02:50:44.311969Z`` (DRF)."""
    if timestamp is None:
        return None
    text = timestamp.replace(" ", "T", 1)
    return text[:-3] + "Z" if text.endswith("+00") else text


def mapping_id(provider_id: str, ba_id: str, gf_id: str | None) -> str:
    return str(uuid.uuid5(MAPPING_NAMESPACE, f"CoralNet:{provider_id}:{ba_id}:{gf_id or ''}"))


def load_reference_payloads(
    ref_dir: Path = REFERENCE_DIR,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Return ``(benthic_attribute_results, choices, labelmapping_results)`` shaped like the live API.

    - BA results: ``id, name, parent, status, updated_on`` plus an extra ``regions`` key the adapter must
      ignore (the live API carries more keys than we use).
    - choices: a list of ``{"name", "data"}`` with ``growthforms`` (from ``growth_forms.csv``) among two
      other small entries.
    - labelmapping results (from ``initial_label_pop.csv``, one per row): ``id`` (deterministic uuid5),
      ``provider="CoralNet"``, ``provider_id`` (CoralNetID, a string), ``provider_label`` (CoralNetName),
      ``benthic_attribute_id/_name``, ``growth_form_id/_name`` (None when ``NA``), plus an extra key.
    """
    ba_rows = _read_csv(ref_dir / "benthic_attribute.csv")
    gf_rows = _read_csv(ref_dir / "growth_forms.csv")
    label_rows = _read_csv(ref_dir / "initial_label_pop.csv")

    benthic_attributes: list[dict[str, Any]] = []
    for row in ba_rows:
        benthic_attributes.append(
            {
                "id": row["id"],
                "name": row["name"],
                "parent": _null(row["parent_id"], "NULL"),
                "status": int(row["status"]) if row["status"] not in ("", "NULL") else None,
                "updated_on": _iso(_null(row["updated_on"], "NULL")),
                "regions": [],
            }
        )
    ba_names = {row["id"]: row["name"] for row in ba_rows}

    growth_forms = [
        {"id": row["id"], "name": row["name"], "updated_on": "2023-01-01T00:00:00Z"} for row in gf_rows
    ]
    gf_names = {row["id"]: row["name"] for row in gf_rows}
    choices: list[dict[str, Any]] = [
        {
            "name": "benthiclifehistories",
            "data": [
                {
                    "id": str(uuid.uuid5(MAPPING_NAMESPACE, "lifehistory:competitive")),
                    "name": "competitive",
                    "updated_on": "2023-01-01T00:00:00Z",
                }
            ],
        },
        {"name": "growthforms", "data": growth_forms},
        {"name": "visibilities", "data": []},
    ]

    label_mappings: list[dict[str, Any]] = []
    for row in label_rows:
        ba_id = row["MermaidBaID"]
        gf_id = _null(row["MermaidGfID"], "NA")
        label_mappings.append(
            {
                "id": mapping_id(row["CoralNetID"], ba_id, gf_id),
                "benthic_attribute_id": ba_id,
                "benthic_attribute_name": ba_names[ba_id],
                "growth_form_id": gf_id,
                "growth_form_name": gf_names[gf_id] if gf_id is not None else None,
                "provider": "CoralNet",
                "provider_id": row["CoralNetID"],
                "provider_label": row["CoralNetName"],
                "updated_on": "2024-01-01T00:00:00Z",
            }
        )
    return benthic_attributes, choices, label_mappings


def reference_annotation_counts(ref_dir: Path = REFERENCE_DIR) -> dict[str, int]:
    """CoralNet label id -> public annotation count (the real long-tail label frequencies)."""
    return {
        row["CoralNetID"]: int(row["Public annotation count"])
        for row in _read_csv(ref_dir / "initial_label_pop.csv")
        if row["Public annotation count"] not in ("", "NA")
    }
