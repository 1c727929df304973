"""MERMAID adapter: the public confirmed-annotations parquet (one file, or a glob of parts).

A glob (``*``, ``?``, ``[``) is allowed in the last path segment only, e.g. ``PREFIX/part-*.parquet``;
a bare folder is not (its feature vectors would be ambiguous).

Columns as MERMAID publishes them: ``id, image_id, point_id, row, col, benthic_attribute_id,
benthic_attribute_name, growth_form_id, growth_form_name, updated_on, region_id, region_name``. The ids,
``row`` and ``col`` are required (any case); a missing growth form may be NULL, '' or 'None' (all
become ''). Parts whose all-NULL columns were written with Arrow type null are accepted. Feature
vectors live beside the parquet as ``<image_id>_featurevector``.

Column types are checked in every file before any value (``TYPES``): ids are text (or Parquet UUIDs),
``row``/``col`` integers, ``updated_on`` a timestamp. A column of another type is an error naming the
file, the column and both types; it is never cast.
"""

from __future__ import annotations

import fnmatch
import hashlib

import duckdb
import numpy as np

from mermaid_data import storage
from mermaid_data.errors import SourceFormatError
from mermaid_data.sources.columns import match_columns, normalize
from mermaid_data.sqlfiles import load_sql, sql_literal

REQUIRED = {
    "id": "id",
    "image_id": "image_id",
    "row": "row",
    "col": "col",
    "benthic_attribute_id": "benthic_attribute_id",
    "growth_form_id": "growth_form_id",
}
FIX = "export the file with MERMAID's columns (see docs/lake.md, 'MERMAID source')"
EXPECTED = {
    "id": "a UUID",
    "image_id": "a non-empty image id",
    "row": "an integer 0..65535",
    "col": "an integer 0..65535",
    "benthic_attribute_id": "a UUID",
    "growth_form_id": "a UUID, or empty/'None' for no growth form",
}


#: Accepted Parquet column types (kinds, see ``_kind``) per column, and how the docs name them.
TYPES = {
    "id": ({"text", "uuid"}, "text (or UUID)"),
    "image_id": ({"text", "uuid"}, "text (or UUID)"),
    "row": ({"integer"}, "an integer type"),
    "col": ({"integer"}, "an integer type"),
    "benthic_attribute_id": ({"text", "uuid"}, "text (or UUID)"),
    "growth_form_id": ({"text", "uuid", "null"}, "text (or UUID, or an all-NULL column)"),
    "updated_on": ({"timestamp", "null"}, "a timestamp"),
}


def _kind(physical: str | None, converted: str | None, logical: str | None) -> str:
    """A Parquet column's type as one word (from DuckDB's parquet_schema)."""
    logical, converted, physical = logical or "", (converted or "").upper(), (physical or "").upper()
    if logical.startswith("NullType"):
        return "null"
    if logical.startswith(("TimestampType", "TimeType")) or converted.startswith(("TIMESTAMP", "TIME_")) or \
            physical == "INT96":
        return "time" if logical.startswith("TimeType") or converted.startswith("TIME_") else "timestamp"
    if logical.startswith("DateType") or converted == "DATE":
        return "date"
    if logical.startswith("DecimalType") or converted == "DECIMAL":
        return "decimal"
    if logical.startswith("UUIDType"):
        return "uuid"
    if physical == "BYTE_ARRAY":
        return "text" if converted in ("UTF8", "ENUM", "JSON") or logical.startswith(("StringType", "EnumType",
                                                                                      "JSONType")) else "binary"
    if physical in ("INT32", "INT64"):
        return "integer"
    return {"FLOAT": "float", "DOUBLE": "float", "BOOLEAN": "boolean"}.get(physical, physical.lower() or "group")


def check_types(con: duckdb.DuckDBPyConnection, uri: str) -> None:
    """Every file's required (and ``updated_on``) columns have a documented type (``TYPES``), or raise
    SourceFormatError naming the file, the column and the type found and expected. Metadata only."""
    try:
        rows = con.execute(
            f"SELECT file_name, name, type, converted_type, logical_type FROM parquet_schema({sql_literal(uri)})"
        ).fetchall()
    except duckdb.Error as exc:
        raise SourceFormatError(f"cannot read as parquet ({str(exc).splitlines()[0]})", where=uri, fix=FIX) from exc
    wanted = {normalize(name): name for name in TYPES}
    seen: set[tuple[str, str]] = set()
    for file_name, name, physical, converted, logical in rows:
        canonical = wanted.get(normalize(name or ""))
        if canonical is None or (file_name, canonical) in seen:
            continue
        seen.add((file_name, canonical))
        kind = _kind(physical, converted, logical)
        accepted, expected = TYPES[canonical]
        if kind not in accepted:
            raise SourceFormatError(
                f"column {name!r} has type {kind} ({physical}{'/' + converted if converted else ''}), expected {expected}",
                where=str(file_name), column=canonical,
                fix=f"write that column with the documented type (it is not converted); {FIX}",
            )


def _scan(uri: str) -> str:
    return f"read_parquet({sql_literal(uri)}, union_by_name = true, file_row_number = true, filename = true)"


GLOB_CHARS = "*?["


def fingerprint(uri: storage.Uri) -> str:
    """ETag (S3) or content hash (local) and size of the export, or of every part its glob matches.

    Raises FileNotFoundError when the file is missing or the glob matches nothing.
    """
    if not any(c in uri.name for c in GLOB_CHARS):
        info = storage.stat(uri)
        return f"{info.etag}:{info.size}"
    parts = sorted(
        (o for o in storage.list_prefix(uri.parent, recursive=False) if fnmatch.fnmatchcase(o.relative_key, uri.name)),
        key=lambda o: o.relative_key,
    )
    if not parts:
        raise FileNotFoundError(str(uri))
    digest = hashlib.sha256(b"mermaid-parts/v1\n")
    for part in parts:
        info = part if uri.is_s3 else storage.stat(uri.parent.join(part.relative_key))
        digest.update(f"{part.relative_key}\t{info.etag}\t{info.size}\n".encode())
    return f"parts:{digest.hexdigest()}"


def register_raw_view(con: duckdb.DuckDBPyConnection, uri: str) -> None:
    """Create temp view ``mermaid_raw`` with canonical column names over the export at ``uri``.

    Header case and column order do not matter; a missing column raises SourceFormatError naming it.
    """
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {_scan(uri)}").fetchall()
    except duckdb.Error as exc:
        raise SourceFormatError(
            f"cannot read as parquet ({str(exc).splitlines()[0]})", where=uri, fix=FIX
        ) from exc
    names = [row[0] for row in described if row[0] not in ("file_row_number", "filename")]
    cols = match_columns(names, REQUIRED, where=uri, fix=FIX)
    try:
        cols.update(match_columns(names, {"updated_on": "updated_on"}, where=uri, fix=FIX))
        updated = f'"{cols["updated_on"]}"'
    except SourceFormatError:
        updated = "NULL::TIMESTAMPTZ"
    selects = ", ".join(f'"{actual}" AS "{canonical}"' for canonical, actual in cols.items() if canonical != "updated_on")
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW mermaid_raw AS SELECT {selects}, {updated} AS updated_on, "
        f"file_row_number, filename FROM {_scan(uri)}"
    )


def check(con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """Check every value of ``mermaid_raw`` (sql/ingest/mermaid_check.sql); return each row's point hash.

    A bad value anywhere raises SourceFormatError naming the first bad row of its kind. (The check is
    an aggregate and the hashes a separate narrow fetch: DuckDB runs both in parallel, while fetching
    the flag per row would not be.)
    """
    con.execute(load_sql("ingest/mermaid_macros"))
    bad = con.execute(load_sql("ingest/mermaid_check")).fetchone()[0]
    if bad:
        validate(con)  # error path only: names the file, row and column
        raise SourceFormatError(  # pragma: no cover - mermaid_check and mermaid_validate test the same
            "a row has a bad value", where="MERMAID export", fix=FIX
        )
    hashes = con.execute('SELECT mermaid_point_hash(image_id, "row", col) AS h FROM mermaid_raw').fetchnumpy()["h"]
    return np.asarray(hashes, dtype=np.uint64)


def validate(con: duckdb.DuckDBPyConnection) -> None:
    """One pass over ``mermaid_raw``; the first bad row of any kind raises SourceFormatError naming it."""
    con.execute(load_sql("ingest/mermaid_macros"))
    cursor = con.execute(load_sql("ingest/mermaid_validate"))
    names = [d[0] for d in cursor.description]
    found = cursor.fetchone()
    for name, bad in zip(names, found):
        if bad is not None:
            raise SourceFormatError(
                f"bad value {bad['v']!r} (expected {EXPECTED[name]})",
                where=bad["f"],
                row=int(bad["r"]) + 1,
                column=name,
                fix=f"correct that row (rows counted from 1) in the MERMAID export; {FIX}",
            )
