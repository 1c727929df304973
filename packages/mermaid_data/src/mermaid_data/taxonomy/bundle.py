"""The public MERMAID taxonomy, bundled as package data (``mermaid_data/taxonomy/data/``).

Four small CSV files (UTF-8, ``\\n`` line ends, a header, rows in a fixed order) hold what the lake needs
from the MERMAID API plus the CoralNet label frequencies that the API does not serve:

- ``benthic_attributes.csv``: ``id,name,parent_id`` (``parent_id`` empty for the 12 roots), by id;
- ``growth_forms.csv``: ``id,name``, by id;
- ``label_mappings.csv``: ``mapping_id,provider_id,provider_label,benthic_attribute_id,growth_form_id``
  (CoralNet label id as digits, ``growth_form_id`` empty when the mapping has none), by label id;
- ``coralnet_label_counts.csv``: ``provider_id,public_annotation_count``, by label id.

``write_bundle`` writes them from a fetched ``Taxonomy`` (``mermaid-data taxonomy snapshot``), so a refresh
from the live API or a folder of saved pages is one command, and the same pages always give the same
bytes. ``BundledTaxonomy.api_payloads`` serves the bundle back as MERMAID-API-shaped records (the demo
generator writes them as pages; tests serve them over HTTP).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from mermaid_data.errors import SourceFormatError
from mermaid_data.sources.api import (
    BENTHIC_ATTRIBUTES_SCHEMA,
    GROWTH_FORMS_SCHEMA,
    LABEL_MAPPINGS_SCHEMA,
    Taxonomy,
)

__all__ = [
    "BUNDLE_DIR",
    "BUNDLE_FILES",
    "BundledTaxonomy",
    "load_bundled_taxonomy",
    "read_label_counts",
    "write_bundle",
]

BUNDLE_DIR = Path(__file__).parent / "data"
BA_FILE = "benthic_attributes.csv"
GF_FILE = "growth_forms.csv"
MAPPINGS_FILE = "label_mappings.csv"
COUNTS_FILE = "coralnet_label_counts.csv"
#: The data files of a bundle, in the order they are written.
BUNDLE_FILES = (BA_FILE, GF_FILE, MAPPINGS_FILE, COUNTS_FILE)

_COLUMNS = {
    BA_FILE: ("id", "name", "parent_id"),
    GF_FILE: ("id", "name"),
    MAPPINGS_FILE: ("mapping_id", "provider_id", "provider_label", "benthic_attribute_id", "growth_form_id"),
    COUNTS_FILE: ("provider_id", "public_annotation_count"),
}
#: Column names accepted for a label-counts CSV (``initial_label_pop.csv`` of the MERMAID API repository
#: uses the first spelling of each).
_COUNT_ID_COLUMNS = ("coralnetid", "provider_id", "label_id", "id")
_COUNT_COLUMNS = ("public annotation count", "public_annotation_count", "annotations", "count")


@dataclass(frozen=True, eq=False)
class BundledTaxonomy:
    """The taxonomy (three Arrow tables, as ``fetch_taxonomy`` returns) and each CoralNet label's count."""

    taxonomy: Taxonomy
    #: CoralNet label id (digits) -> public annotation count on CoralNet.
    label_counts: dict[str, int]

    def api_payloads(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """``(benthic attribute results, growth form records, label mapping results)`` shaped like the API.

        Growth forms are the ``data`` of the ``growthforms`` choice; wrap them with
        ``mermaid_data.demo.write_api_pages`` (or a test server) to get ``choices/``.
        """
        tax = self.taxonomy
        bas = tax.benthic_attributes.to_pylist()
        gfs = tax.growth_forms.to_pylist()
        benthic_attributes = [
            {"id": r["id"], "name": r["name"], "parent": r["parent_id"], "status": 90} for r in bas
        ]
        growth_forms = [{"id": r["id"], "name": r["name"]} for r in gfs]
        label_mappings = [
            {
                "id": r["mapping_id"],
                "benthic_attribute_id": r["benthic_attribute_id"],
                "benthic_attribute_name": r["benthic_attribute_name"],
                "growth_form_id": r["growth_form_id"] or None,
                "growth_form_name": r["growth_form_name"] or None,
                "provider": "CoralNet",
                "provider_id": r["provider_id"],
                "provider_label": r["provider_label"],
            }
            for r in tax.label_mappings.to_pylist()
        ]
        return benthic_attributes, growth_forms, label_mappings


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _csv_text(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def bundle_texts(taxonomy: Taxonomy, label_counts: dict[str, int]) -> dict[str, str]:
    """The text of each bundle file (the same taxonomy and counts always give the same text)."""
    bas = sorted(taxonomy.benthic_attributes.to_pylist(), key=lambda r: r["id"])
    gfs = sorted(taxonomy.growth_forms.to_pylist(), key=lambda r: r["id"])
    mappings = sorted(
        taxonomy.label_mappings.to_pylist(),
        key=lambda r: (int(r["provider_id"]), r["benthic_attribute_id"], r["growth_form_id"], r["mapping_id"]),
    )
    return {
        BA_FILE: _csv_text(_COLUMNS[BA_FILE], [(r["id"], r["name"], r["parent_id"] or "") for r in bas]),
        GF_FILE: _csv_text(_COLUMNS[GF_FILE], [(r["id"], r["name"]) for r in gfs]),
        MAPPINGS_FILE: _csv_text(
            _COLUMNS[MAPPINGS_FILE],
            [
                (r["mapping_id"], r["provider_id"], r["provider_label"], r["benthic_attribute_id"], r["growth_form_id"])
                for r in mappings
            ],
        ),
        COUNTS_FILE: _csv_text(
            _COLUMNS[COUNTS_FILE], [(k, label_counts[k]) for k in sorted(label_counts, key=int)]
        ),
    }


def write_bundle(dest: Path, taxonomy: Taxonomy, label_counts: dict[str, int]) -> list[Path]:
    """Write the bundle files into ``dest`` (created if missing); return their paths."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in bundle_texts(taxonomy, label_counts).items():
        path = dest / name
        path.write_text(text, encoding="utf-8", newline="")
        written.append(path)
    return written


def read_label_counts(path: Path) -> dict[str, int]:
    """CoralNet label id -> public annotation count, from a CSV (e.g. the API repository's
    ``initial_label_pop.csv``: ``CoralNetID``, ``Public annotation count``; or this bundle's own file)."""
    where = str(path)
    fix = "give a CSV with a CoralNet label id column (CoralNetID or provider_id) and a count column " \
          "(Public annotation count or public_annotation_count)"
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceFormatError(f"cannot read label counts ({exc})", where=where, fix=fix) from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    id_col = next((header.index(c) for c in _COUNT_ID_COLUMNS if c in header), None)
    count_col = next((header.index(c) for c in _COUNT_COLUMNS if c in header), None)
    if id_col is None or count_col is None:
        raise SourceFormatError(f"no label id or count column (header: {header})", where=where, row=1, fix=fix)
    counts: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        label = row[id_col].strip() if len(row) > id_col else ""
        value = row[count_col].strip() if len(row) > count_col else ""
        if not label.isdigit():
            raise SourceFormatError(f"label id {label!r} is not an integer", where=where, row=line, fix=fix)
        if value in ("", "NA"):
            value = "0"
        if not value.isdigit():
            raise SourceFormatError(f"count {value!r} is not a non-negative integer", where=where, row=line,
                                    fix=fix)
        counts[str(int(label))] = int(value)
    return counts


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def _read_rows(directory: Path, name: str) -> list[dict[str, str]]:
    path = directory / name
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != _COLUMNS[name]:
            raise SourceFormatError(
                f"expected columns {','.join(_COLUMNS[name])}, got {reader.fieldnames}",
                where=str(path), row=1, fix="rewrite the bundle with `mermaid-data taxonomy snapshot`",
            )
        return list(reader)


def read_bundle(directory: Path) -> BundledTaxonomy:
    """Read a bundle folder (as ``write_bundle`` wrote it)."""
    directory = Path(directory)
    bas = _read_rows(directory, BA_FILE)
    gfs = _read_rows(directory, GF_FILE)
    mappings = _read_rows(directory, MAPPINGS_FILE)
    counts = {r["provider_id"]: int(r["public_annotation_count"]) for r in _read_rows(directory, COUNTS_FILE)}
    ba_names = {r["id"]: r["name"] for r in bas}
    gf_names = {r["id"]: r["name"] for r in gfs}
    taxonomy = Taxonomy(
        benthic_attributes=pa.table(
            {"id": [r["id"] for r in bas], "name": [r["name"] for r in bas],
             "parent_id": [r["parent_id"] or None for r in bas]},
            schema=BENTHIC_ATTRIBUTES_SCHEMA,
        ),
        growth_forms=pa.table(
            {"id": [r["id"] for r in gfs], "name": [r["name"] for r in gfs]}, schema=GROWTH_FORMS_SCHEMA
        ),
        label_mappings=pa.table(
            {
                "mapping_id": [r["mapping_id"] for r in mappings],
                "provider_id": [r["provider_id"] for r in mappings],
                "provider_label": [r["provider_label"] for r in mappings],
                "benthic_attribute_id": [r["benthic_attribute_id"] for r in mappings],
                "benthic_attribute_name": [ba_names[r["benthic_attribute_id"]] for r in mappings],
                "growth_form_id": [r["growth_form_id"] for r in mappings],
                "growth_form_name": [gf_names.get(r["growth_form_id"], "") for r in mappings],
            },
            schema=LABEL_MAPPINGS_SCHEMA,
        ),
    )
    return BundledTaxonomy(taxonomy=taxonomy, label_counts=counts)


@cache
def load_bundled_taxonomy() -> BundledTaxonomy:
    """The taxonomy shipped with this package (read once per process)."""
    return read_bundle(BUNDLE_DIR)
