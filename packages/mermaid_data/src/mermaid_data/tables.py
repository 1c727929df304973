"""The lake's Delta tables: names, Arrow schemas and partition columns (the storage contract).

User queries go through the views in ``sql/views/``; see docs/lake.md for every column.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa


class Site(StrEnum):
    MERMAID = "mermaid"
    CORALNET = "coralnet"


MERMAID_SOURCE_ID = "mermaid"
TAXONOMY_SOURCE_ID = "taxonomy"
TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    partition_by: tuple[str, ...] = ()


ANNOTATIONS = TableSpec(
    "annotations",
    pa.schema(
        [
            ("site", pa.string()),
            ("source_id", pa.string()),
            ("image_id", pa.string()),
            ("row", pa.int32()),
            ("col", pa.int32()),
            ("label_id", pa.int64()),  # CoralNet label id; NULL for MERMAID
            ("benthic_attribute_id", pa.string()),  # MERMAID's own; NULL for CoralNet (mapped in a view)
            ("growth_form_id", pa.string()),  # MERMAID's own, '' = none; NULL for CoralNet
            ("annotation_id", pa.string()),  # MERMAID's id; NULL for CoralNet (derived in the view)
            ("occurrence", pa.int32()),  # 1-based index among identical (image,row,col) points
            ("updated_on", TS),  # MERMAID's updated_on; NULL for CoralNet
            ("ingested_at", TS),
        ]
    ),
    ("site", "source_id"),
)

FEATURES = TableSpec(
    "features",
    pa.schema(
        [
            ("site", pa.string()),
            ("source_id", pa.string()),
            ("image_id", pa.string()),
            ("feature_key", pa.string()),
            ("size_bytes", pa.int64()),
            ("etag", pa.string()),
        ]
    ),
    ("site", "source_id"),
)

SOURCES = TableSpec(
    "sources",
    pa.schema(
        [
            ("site", pa.string()),
            ("source_id", pa.string()),
            ("root_uri", pa.string()),
            ("annotations_uri", pa.string()),
            ("fingerprint", pa.string()),
            ("features_fingerprint", pa.string()),
            ("row_count", pa.int64()),
            ("image_count", pa.int64()),
            ("duplicate_points", pa.int64()),
            ("feature_count", pa.int64()),
            ("ingested_at", TS),
        ]
    ),
)

BENTHIC_ATTRIBUTES = TableSpec(
    "benthic_attributes",
    pa.schema([("id", pa.string()), ("name", pa.string()), ("parent_id", pa.string())]),
)
GROWTH_FORMS = TableSpec("growth_forms", pa.schema([("id", pa.string()), ("name", pa.string())]))
LABEL_MAPPINGS = TableSpec(
    "label_mappings",
    pa.schema(
        [
            ("mapping_id", pa.string()),
            ("provider_id", pa.string()),
            ("provider_label", pa.string()),
            ("benthic_attribute_id", pa.string()),
            ("benthic_attribute_name", pa.string()),
            ("growth_form_id", pa.string()),
            ("growth_form_name", pa.string()),
        ]
    ),
)

SNAPSHOTS = TableSpec(
    "snapshots",
    pa.schema(
        [
            ("snapshot_id", pa.string()),
            ("name", pa.string()),
            ("message", pa.string()),
            ("created_at", TS),
            ("row_count", pa.int64()),
            ("content_sha256", pa.string()),
            ("input_versions", pa.string()),  # JSON {table: version}
            ("recipe_sha256", pa.string()),
        ]
    ),
)

#: Tables ``ingest`` writes, in the order their views are created.
INGEST_TABLES = (ANNOTATIONS, FEATURES, SOURCES, BENTHIC_ATTRIBUTES, GROWTH_FORMS, LABEL_MAPPINGS)
TABLES = {spec.name: spec for spec in (*INGEST_TABLES, SNAPSHOTS)}
#: Tables a snapshot recipe reads (their versions are pinned in the snapshot ID).
SNAPSHOT_INPUTS = ("annotations", "features", "benthic_attributes", "growth_forms", "label_mappings")
