"""Write offline demo sources shaped like the real ones: MERMAID parquet, CoralNet CSVs, features, API pages.

Layout under ``DEST`` (same arguments -> byte-identical files)::

    DEST/mermaid/mermaid_confirmed_annotations.parquet     ~25% of the rows, 25 points/image on a 5x5 grid
    DEST/mermaid/<image_id>_featurevector                  pyspacer ImageFeatures (no extension)
    DEST/coralnet/s<source_id>/annotations.csv             Image ID,Row,Column,Label ID (+ extras sometimes)
    DEST/coralnet/s<source_id>/features/i<image_id>.featurevector
    DEST/api/benthicattributes.json (+ .pageK.json)        MERMAID-API-shaped pages, ``next`` relative
    DEST/api/choices.json
    DEST/api/classification/labelmappings.json (+ .pageK.json)
    DEST/.mermaid-demo.json                                what was generated (marks DEST as ours)

Everything is built column-wise with numpy (a Python loop per CoralNet source and per feature file, never
per annotation): 20M annotations without features take ~20 s and < 1 GB RSS on 2 cores.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mermaid_data.demo.features import FeatureModel, build_feature_model, write_feature_file
from mermaid_data.demo.taxonomy import Taxonomy, build_taxonomy, demo_uuid
from mermaid_data.errors import ConfigError

__all__ = [
    "CORALNET_BASE_COLUMNS",
    "MERMAID_COLUMNS",
    "MERMAID_SCHEMA",
    "SCALES",
    "DemoSummary",
    "generate_demo_sources",
    "write_api_pages",
]

#: Scale name -> total annotation rows (MERMAID + CoralNet).
SCALES: dict[str, int] = {
    "tiny": 3_000,
    "small": 20_000,
    "medium": 1_000_000,
    "large": 22_000_000,
}

MIN_ANNOTATIONS = 200
MERMAID_SHARE = 0.25
MERMAID_GRID = 5  # 5 x 5 = 25 points per image
MERMAID_POINTS = MERMAID_GRID * MERMAID_GRID
MERMAID_IMAGE_SIZES = ((1000, 1500), (1536, 2048), (2000, 3000))  # (height, width)
MERMAID_MAX_ROW_GROUP_IMAGES = 40_000  # 1M rows per row group
MISSING_FEATURE_SHARE = 0.02
UNMAPPED_SHARE = 0.03
SOURCES_PER_SQRT_ROW = 0.27  # ~1,100 sources at 16.5M CoralNet rows
PPI_CHOICES = (10, 25, 30, 50)
PPI_WEIGHTS = (0.10, 0.20, 0.55, 0.15)
PPI_GRID = {10: (2, 5), 25: (5, 5), 30: (5, 6), 50: (5, 10)}  # stratified cells (rows, cols)
CORALNET_IMAGE_SIZES = ((1536, 2048), (2448, 3264), (3000, 4000), (1080, 1920))
DUPLICATE_SOURCE_SHARE = 0.3
ANNOTATORS = ("Imported", "kim_j", "m.santos", "reefteam", "a.okafor")

MERMAID_FILE = "mermaid_confirmed_annotations.parquet"
MANIFEST_FILE = ".mermaid-demo.json"
MERMAID_COLUMNS = (
    "id",
    "image_id",
    "point_id",
    "row",
    "col",
    "benthic_attribute_id",
    "benthic_attribute_name",
    "growth_form_id",
    "growth_form_name",
    "updated_on",
    "region_id",
    "region_name",
)
MERMAID_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("image_id", pa.string()),
        ("point_id", pa.string()),
        ("row", pa.int64()),
        ("col", pa.int64()),
        ("benthic_attribute_id", pa.string()),
        ("benthic_attribute_name", pa.string()),
        ("growth_form_id", pa.string()),
        ("growth_form_name", pa.string()),
        ("updated_on", pa.timestamp("us", tz="UTC")),
        ("region_id", pa.string()),
        ("region_name", pa.string()),
    ]
)
CORALNET_BASE_COLUMNS = ("Image ID", "Row", "Column", "Label ID")
CORALNET_EXTENDED_COLUMNS = (
    "Name",
    "Image ID",
    "Annotator",
    "Date annotated",
    "Column",
    "Row",
    "Label",
    "Label ID",
)

_US_PER_S = 1_000_000
_MERMAID_T0_US = 1_609_459_200 * _US_PER_S  # 2021-01-01T00:00:00Z
_MERMAID_SPAN_US = 4 * 365 * 86_400 * _US_PER_S
_CORALNET_T0_US = 1_325_376_000 * _US_PER_S  # 2012-01-01T00:00:00Z

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoSummary:
    """What ``generate_demo_sources`` wrote."""

    dest: Path
    scale: str
    seed: int
    target_annotations: int  # the scale's size, or ``annotations`` when given
    features: bool
    mermaid_rows: int
    mermaid_images: int
    coralnet_rows: int
    coralnet_images: int
    coralnet_sources: int
    feature_files_written: int
    feature_files_missing: int  # images deliberately left without a feature file
    duplicate_points: int  # CoralNet rows repeating an earlier (image, row, col) of their source
    unmapped_label_rows: int  # CoralNet rows whose label id is not in the label mapping
    benthic_attributes: int
    growth_forms: int
    label_mappings: int

    @property
    def total_rows(self) -> int:
        return self.mermaid_rows + self.coralnet_rows

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["dest"] = str(self.dest)
        data["total_rows"] = self.total_rows
        return data


# ----------------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------------


def generate_demo_sources(
    dest: Path,
    *,
    scale: str = "tiny",
    seed: int = 0,
    features: bool = True,
    annotations: int | None = None,
    progress: Progress | None = None,
) -> DemoSummary:
    """Write demo MERMAID + CoralNet sources and MERMAID API pages under ``dest``; return what was written.

    ``scale`` picks the total number of annotation rows from ``SCALES``; ``annotations`` overrides it.
    ``features=False`` skips the feature files (the fast path for benchmarks). ``progress(stage, done,
    total)`` is called as work advances (stages ``mermaid``, ``coralnet``, ``api``).

    ``dest`` may be missing or empty; if it already holds a demo written by this function, its ``mermaid``,
    ``coralnet`` and ``api`` folders are replaced. Anything else there raises ``ConfigError``.
    """
    total = _resolve_total(scale, annotations)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}", fix="pass e.g. --seed 0")
    seed = int(seed)
    dest = Path(dest)
    _prepare_dest(dest)
    report: Progress = progress if progress is not None else (lambda stage, done, of: None)

    taxonomy = build_taxonomy()
    model = build_feature_model(taxonomy, seed) if features else None

    mermaid_images = max(1, round(total * MERMAID_SHARE / MERMAID_POINTS))
    coralnet_target = max(MIN_ANNOTATIONS // 2, total - mermaid_images * MERMAID_POINTS)

    mermaid = _write_mermaid(dest / "mermaid", taxonomy, seed, mermaid_images, model, report)
    coralnet = _write_coralnet(dest / "coralnet", taxonomy, seed, coralnet_target, model, report)

    ba_records = taxonomy.benthic_attribute_records()
    gf_records = taxonomy.growth_form_records()
    lm_records = taxonomy.label_mapping_records()
    write_api_pages(dest / "api", ba_records, gf_records, lm_records)
    report("api", 1, 1)

    summary = DemoSummary(
        dest=dest,
        scale=scale,
        seed=seed,
        target_annotations=total,
        features=bool(features),
        mermaid_rows=mermaid["rows"],
        mermaid_images=mermaid["images"],
        coralnet_rows=coralnet["rows"],
        coralnet_images=coralnet["images"],
        coralnet_sources=coralnet["sources"],
        feature_files_written=mermaid["features_written"] + coralnet["features_written"],
        feature_files_missing=mermaid["features_missing"] + coralnet["features_missing"],
        duplicate_points=coralnet["duplicates"],
        unmapped_label_rows=coralnet["unmapped"],
        benthic_attributes=len(ba_records),
        growth_forms=len(gf_records),
        label_mappings=len(lm_records),
    )
    manifest = {"generator": "mermaid_data.demo", "complete": True, **summary.to_dict()}
    del manifest["dest"]
    (dest / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return summary


def write_api_pages(
    dest_api_dir: Path,
    benthic_attributes: Sequence[dict[str, Any]],
    growth_forms: Sequence[dict[str, Any]],
    label_mappings: Sequence[dict[str, Any]],
    page_size: int = 100,
) -> list[Path]:
    """Write MERMAID-API-shaped JSON pages for offline taxonomy ingestion; return the files written.

    - ``benthicattributes.json`` then ``benthicattributes.page2.json``...: ``{"count", "next", "previous",
      "results"}``; ``next``/``previous`` are file names relative to ``dest_api_dir`` or null;
    - ``choices.json``: a list of ``{"name", "data"}``, growth forms under ``"growthforms"`` among others;
    - ``classification/labelmappings.json`` (+ ``classification/labelmappings.pageK.json``), paginated the
      same way (links still relative to ``dest_api_dir``).
    """
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise ConfigError(f"page_size must be a positive integer, got {page_size!r}")
    dest_api_dir = Path(dest_api_dir)
    dest_api_dir.mkdir(parents=True, exist_ok=True)
    written = _write_paginated(dest_api_dir, "benthicattributes", list(benthic_attributes), page_size)
    written += _write_paginated(dest_api_dir, "classification/labelmappings", list(label_mappings), page_size)
    choices = _choices(list(growth_forms))
    path = dest_api_dir / "choices.json"
    _write_json(path, choices)
    written.append(path)
    return written


# ----------------------------------------------------------------------------------------------------
# Arguments and destination
# ----------------------------------------------------------------------------------------------------


def _resolve_total(scale: str, annotations: int | None) -> int:
    if scale not in SCALES:
        raise ConfigError(
            f"unknown demo scale {scale!r}",
            fix=f"use one of {', '.join(SCALES)} (or pass annotations=N)",
        )
    if annotations is None:
        return SCALES[scale]
    if isinstance(annotations, bool) or not isinstance(annotations, (int, np.integer)):
        raise ConfigError(f"annotations must be an integer, got {annotations!r}")
    if annotations < MIN_ANNOTATIONS:
        raise ConfigError(
            f"annotations must be at least {MIN_ANNOTATIONS}, got {annotations}",
            fix=f"pass annotations >= {MIN_ANNOTATIONS} or leave it unset to use the scale's size",
        )
    return int(annotations)


def _prepare_dest(dest: Path) -> None:
    if dest.exists() and not dest.is_dir():
        raise ConfigError(
            "the demo destination exists and is not a directory", where=str(dest), fix="pick a directory"
        )
    ours = ("mermaid", "coralnet", "api")
    present = [name for name in ours if (dest / name).exists()]
    if present:
        if not (dest / MANIFEST_FILE).is_file():
            raise ConfigError(
                f"the demo destination already holds {', '.join(present)} not written by the demo generator",
                where=str(dest),
                fix="choose an empty or new directory, or remove those folders",
            )
        for name in present:
            target = dest / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MANIFEST_FILE).write_text(
        json.dumps({"generator": "mermaid_data.demo", "complete": False}, indent=2) + "\n", encoding="utf-8"
    )


# ----------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _random_uuid_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``[n, 16]`` uint8 of version-4 UUIDs drawn from ``rng``."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


def _uuid_strings(raw: np.ndarray) -> pa.StringArray:
    """Format ``[n, 16]`` uint8 as canonical lower-case UUID strings, vectorized."""
    n = raw.shape[0]
    hexed = np.empty((n, 32), dtype=np.uint8)
    hexed[:, 0::2] = _HEX[raw >> 4]
    hexed[:, 1::2] = _HEX[raw & 0x0F]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    out[:, 0:8] = hexed[:, 0:8]
    out[:, 9:13] = hexed[:, 8:12]
    out[:, 14:18] = hexed[:, 12:16]
    out[:, 19:23] = hexed[:, 16:20]
    out[:, 24:36] = hexed[:, 20:32]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out)).cast(pa.string())


# Arrow arrays are built from buffers: ``pa.array`` would import pandas (seconds on a cold start).


def _int64_array(values: np.ndarray, type_: pa.DataType | None = None) -> pa.Array:
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(type_ or pa.int64(), len(data), [None, pa.py_buffer(data)])


def _string_array(values: Sequence[str]) -> pa.StringArray:
    encoded = [value.encode("utf-8") for value in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    offsets[1:] = np.cumsum([len(item) for item in encoded])
    return pa.StringArray.from_buffers(len(encoded), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)))


def _exact_missing(rng: np.random.Generator, n: int) -> np.ndarray:
    """A boolean mask with exactly round(2% of n) (at least 1 when n >= 2) True entries."""
    mask = np.zeros(n, dtype=bool)
    k = max(1, round(MISSING_FEATURE_SHARE * n)) if n >= 2 else 0
    if k:
        mask[rng.choice(n, size=k, replace=False)] = True
    return mask


# ----------------------------------------------------------------------------------------------------
# MERMAID
# ----------------------------------------------------------------------------------------------------


def _write_mermaid(
    out_dir: Path,
    taxonomy: Taxonomy,
    seed: int,
    n_images: int,
    model: FeatureModel | None,
    report: Progress,
) -> dict[str, int]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1])
    feature_rng = np.random.default_rng([seed, 3])

    # Images: ids sorted (the file is ordered by image_id), then per-image attributes.
    image_raw = _random_uuid_bytes(rng, n_images)
    hi = image_raw[:, :8].copy().view(">u8").ravel()
    lo = image_raw[:, 8:].copy().view(">u8").ravel()
    image_raw = image_raw[np.lexsort((lo, hi))]
    image_ids = _uuid_strings(image_raw)
    sizes = np.array(MERMAID_IMAGE_SIZES, dtype=np.int64)[rng.integers(0, len(MERMAID_IMAGE_SIZES), n_images)]
    region_weights = np.array([region.weight for region in taxonomy.regions])
    regions = rng.choice(len(taxonomy.regions), size=n_images, p=region_weights / region_weights.sum())
    updated_us = _MERMAID_T0_US + rng.integers(0, _MERMAID_SPAN_US // _US_PER_S, n_images) * _US_PER_S
    updated_us += rng.integers(0, _US_PER_S, n_images)
    centers = (np.arange(MERMAID_GRID) + 0.5) / MERMAID_GRID
    grid_rows = np.floor(sizes[:, :1] * centers).astype(np.int64)  # [n_images, 5]
    grid_cols = np.floor(sizes[:, 1:] * centers).astype(np.int64)

    bas = taxonomy.benthic_attributes
    gfs = taxonomy.growth_forms
    ba_ids = _string_array([ba.id for ba in bas])
    ba_names = _string_array([ba.name for ba in bas])
    gf_ids = _string_array([gf.id for gf in gfs] + ["None"])  # index -1 / n_gf = no growth form
    gf_names = _string_array([gf.name for gf in gfs] + ["None"])
    region_ids = _string_array([region.id for region in taxonomy.regions])
    region_names = _string_array([region.name for region in taxonomy.regions])
    n_gf = len(gfs)
    gf_cdf = np.cumsum(taxonomy.mermaid_gf_weights, axis=1)

    missing = _exact_missing(feature_rng, n_images) if model is not None else np.zeros(n_images, dtype=bool)
    written = 0
    chunk = int(min(MERMAID_MAX_ROW_GROUP_IMAGES, max(8, math.ceil(n_images / 4))))
    path = out_dir / MERMAID_FILE
    with pq.ParquetWriter(path, MERMAID_SCHEMA, compression="zstd") as writer:
        for start in range(0, n_images, chunk):
            stop = min(n_images, start + chunk)
            k = stop - start
            n = k * MERMAID_POINTS
            per_row_image = np.repeat(np.arange(start, stop), MERMAID_POINTS)
            rows = np.repeat(grid_rows[start:stop], MERMAID_GRID, axis=1).ravel()
            cols = np.tile(grid_cols[start:stop], (1, MERMAID_GRID)).ravel()
            ba = rng.choice(len(bas), size=n, p=taxonomy.mermaid_ba_weights)
            has_gf = rng.random(n) < taxonomy.mermaid_gf_probability[ba]
            # each row's growth form from its BA's own distribution: inverse CDF, vectorized
            gf = np.minimum((rng.random(n)[:, None] > gf_cdf[ba]).sum(axis=1), n_gf - 1)
            gf = np.where(has_gf, gf, n_gf)
            row_ids = _uuid_strings(_random_uuid_bytes(rng, n))
            point_ids = _uuid_strings(_random_uuid_bytes(rng, n))
            region = regions[per_row_image]
            ba_taken = _int64_array(ba)
            gf_taken = _int64_array(gf)
            region_taken = _int64_array(region)
            table = pa.Table.from_arrays(
                [
                    row_ids,
                    image_ids.take(_int64_array(per_row_image)),
                    point_ids,
                    _int64_array(rows),
                    _int64_array(cols),
                    ba_ids.take(ba_taken),
                    ba_names.take(ba_taken),
                    gf_ids.take(gf_taken),
                    gf_names.take(gf_taken),
                    _int64_array(updated_us[per_row_image], MERMAID_SCHEMA.field("updated_on").type),
                    region_ids.take(region_taken),
                    region_names.take(region_taken),
                ],
                schema=MERMAID_SCHEMA,
            )
            writer.write_table(table, row_group_size=n)

            if model is not None:
                names = image_ids.slice(start, k).to_pylist()
                gf_model = np.where(gf == n_gf, -1, gf)
                for j in range(k):
                    if missing[start + j]:
                        continue
                    span = slice(j * MERMAID_POINTS, (j + 1) * MERMAID_POINTS)
                    feat = model.sample(feature_rng, ba[span], gf_model[span])
                    write_feature_file(out_dir / f"{names[j]}_featurevector", rows[span], cols[span], feat)
                    written += 1
                    if written % 500 == 0:
                        report("mermaid", start + j, n_images)
            report("mermaid", stop, n_images)

    return {
        "rows": n_images * MERMAID_POINTS,
        "images": n_images,
        "features_written": written,
        "features_missing": int(missing.sum()),
    }


# ----------------------------------------------------------------------------------------------------
# CoralNet
# ----------------------------------------------------------------------------------------------------


def _write_coralnet(
    out_dir: Path,
    taxonomy: Taxonomy,
    seed: int,
    target_rows: int,
    model: FeatureModel | None,
    report: Progress,
) -> dict[str, int]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 2])
    feature_rng = np.random.default_rng([seed, 4])

    # Sources: ids, points per image, heavy-tailed sizes, image geometry, quirks.
    n_sources = int(
        min(max(3, round(SOURCES_PER_SQRT_ROW * math.sqrt(target_rows))), max(1, target_rows // 10))
    )
    id_ceiling = max(4000, 10 + 3 * n_sources)
    source_ids = np.sort(rng.choice(np.arange(10, id_ceiling), size=n_sources, replace=False))
    ppi = rng.choice(np.array(PPI_CHOICES), size=n_sources, p=np.array(PPI_WEIGHTS))
    weights = rng.lognormal(0.0, 1.5, n_sources)
    n_images = np.maximum(1, np.rint(target_rows * weights / weights.sum() / ppi)).astype(np.int64)
    biggest = int(np.argmax(weights))
    shortfall = target_rows - int((n_images * ppi).sum())
    n_images[biggest] = max(1, n_images[biggest] + round(shortfall / ppi[biggest]))
    dims = np.array(CORALNET_IMAGE_SIZES, dtype=np.int64)[
        rng.integers(0, len(CORALNET_IMAGE_SIZES), n_sources)
    ]
    uniform_grid = rng.random(n_sources) < 0.2
    has_duplicates = rng.random(n_sources) < DUPLICATE_SOURCE_SHARE
    if not has_duplicates.any():
        has_duplicates[biggest] = True
    extended = (np.arange(n_sources) % 3) == 2
    start_day = rng.integers(0, 12 * 365, n_sources)

    labels = taxonomy.labels
    mapped = taxonomy.mapped_labels
    n_mapped = len(mapped)
    n_unmapped = len(labels) - n_mapped
    n_labels = len(labels)
    label_ids = np.array([label.label_id for label in labels], dtype=np.int64)
    label_codes = pl.Series("Label", [label.short_code for label in labels], dtype=pl.String)
    n_ba = len(taxonomy.benthic_attributes)
    label_ba = np.array(
        [label.ba_index if label.mapped else n_ba + (label.index - n_mapped) for label in labels],
        dtype=np.int64,
    )
    label_gf = np.array([label.gf_index for label in labels], dtype=np.int64)
    annotators = pl.Series("Annotator", ANNOTATORS, dtype=pl.String)

    total_images = int(n_images.sum())
    missing = (
        _exact_missing(feature_rng, total_images) if model is not None else np.zeros(total_images, dtype=bool)
    )
    next_image_id = int(rng.integers(1_000, 60_000))
    image_offset = 0
    rows_total = duplicates = unmapped_total = written = 0

    for s in range(n_sources):
        k = int(n_images[s])
        p = int(ppi[s])
        n = k * p
        image_ids = next_image_id + np.cumsum(rng.integers(1, 4, k))
        next_image_id = int(image_ids[-1] + rng.integers(1, 500))

        # Points: one per stratified cell (random inside it, or its centre for a uniform grid).
        height, width = (int(v) for v in dims[s])
        grid_r, grid_c = PPI_GRID[p]
        cell_h, cell_w = height // grid_r, width // grid_c
        cell_row = np.repeat(np.arange(grid_r), grid_c) * cell_h
        cell_col = np.tile(np.arange(grid_c), grid_r) * cell_w
        if uniform_grid[s]:
            rows = np.broadcast_to(cell_row + cell_h // 2, (k, p)).copy()
            cols = np.broadcast_to(cell_col + cell_w // 2, (k, p)).copy()
        else:
            rows = cell_row + rng.integers(0, cell_h, (k, p))
            cols = cell_col + rng.integers(0, cell_w, (k, p))

        # Labels: the global long tail, reweighted per source and cut to a source label set.
        source_weights = taxonomy.label_weights * rng.gamma(4.0, 0.25, n_mapped)
        keep = rng.random(n_mapped) < 0.6
        keep[:10] = True
        keep[taxonomy.double_mapped[0]] = True  # every source uses the label the mapping lists twice
        source_weights = np.where(keep, source_weights, 0.0)
        label_index = rng.choice(n_mapped, size=n, p=source_weights / source_weights.sum())
        is_unmapped = rng.random(n) < UNMAPPED_SHARE
        label_index[is_unmapped] = n_mapped + rng.integers(0, n_unmapped, int(is_unmapped.sum()))
        label_index = label_index.reshape(k, p)

        # Duplicate points: point 1 of a few images repeats point 0's (row, col), same label or not.
        if has_duplicates[s] and p >= 2:
            n_dup = int(min(k, rng.integers(1, 5)))
            which = np.sort(rng.choice(k, size=n_dup, replace=False))
            same = (np.arange(n_dup) + duplicates) % 2 == 0  # alternate: same label, different label
            rows[which, 1] = rows[which, 0]
            cols[which, 1] = cols[which, 0]
            first = label_index[which, 0]
            second = label_index[which, 1]
            second = np.where(same, first, np.where(second == first, (first + 1) % n_labels, second))
            label_index[which, 1] = second
            duplicates += n_dup

        flat_labels = label_index.ravel()
        unmapped_total += int((flat_labels >= n_mapped).sum())
        rows_total += n

        source_dir = out_dir / f"s{int(source_ids[s])}"
        source_dir.mkdir(parents=True, exist_ok=True)
        columns: dict[str, Any] = {
            "Image ID": np.repeat(image_ids, p),
            "Row": rows.ravel(),
            "Column": cols.ravel(),
            "Label ID": label_ids[flat_labels],
        }
        if extended[s]:
            per_row_image = np.repeat(np.arange(k), p)
            names = pl.Series("Name", [f"IMG_{j + 1:05d}.JPG" for j in range(k)], dtype=pl.String)
            annotated_us = (
                _CORALNET_T0_US
                + int(start_day[s]) * 86_400 * _US_PER_S
                + np.sort(rng.integers(0, 400 * 86_400, k)) * _US_PER_S
            )
            dates = (
                pl.Series("Date annotated", annotated_us)
                .cast(pl.Datetime("us"))
                .dt.strftime("%Y-%m-%d %H:%M:%S+00:00")
            )
            columns["Name"] = names.gather(per_row_image)
            columns["Annotator"] = annotators.gather(rng.integers(0, len(ANNOTATORS), k)[per_row_image])
            columns["Date annotated"] = dates.gather(per_row_image)
            columns["Label"] = label_codes.gather(flat_labels)
            order = CORALNET_EXTENDED_COLUMNS
        else:
            order = CORALNET_BASE_COLUMNS
        frame = pl.DataFrame({name: columns[name] for name in order})
        frame.write_csv(source_dir / "annotations.csv")

        if model is not None:
            feature_dir = source_dir / "features"
            feature_dir.mkdir(exist_ok=True)
            for j in range(k):
                if missing[image_offset + j]:
                    continue
                feat = model.sample(feature_rng, label_ba[label_index[j]], label_gf[label_index[j]])
                if has_duplicates[s] and p >= 2 and rows[j, 1] == rows[j, 0] and cols[j, 1] == cols[j, 0]:
                    feat[1] = feat[0]  # same spot, same crop, same features
                write_feature_file(
                    feature_dir / f"i{int(image_ids[j])}.featurevector", rows[j], cols[j], feat
                )
                written += 1
        image_offset += k
        report("coralnet", s + 1, n_sources)

    return {
        "rows": rows_total,
        "images": total_images,
        "sources": n_sources,
        "duplicates": duplicates,
        "unmapped": unmapped_total,
        "features_written": written,
        "features_missing": int(missing.sum()),
    }


# ----------------------------------------------------------------------------------------------------
# API pages
# ----------------------------------------------------------------------------------------------------


def _page_name(stem: str, page: int) -> str:
    return f"{stem}.json" if page == 1 else f"{stem}.page{page}.json"


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _write_paginated(root: Path, stem: str, results: list[dict[str, Any]], page_size: int) -> list[Path]:
    n_pages = max(1, math.ceil(len(results) / page_size))
    written = []
    for page in range(1, n_pages + 1):
        payload = {
            "count": len(results),
            "next": _page_name(stem, page + 1) if page < n_pages else None,
            "previous": _page_name(stem, page - 1) if page > 1 else None,
            "results": results[(page - 1) * page_size : page * page_size],
        }
        path = root / _page_name(stem, page)
        _write_json(path, payload)
        written.append(path)
    return written


def _choices(growth_forms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stamp = "2023-01-01T00:00:00Z"

    def entry(kind: str, names: Sequence[str]) -> list[dict[str, Any]]:
        return [{"id": demo_uuid(kind, name), "name": name, "updated_on": stamp} for name in names]

    return [
        {
            "name": "benthiclifehistories",
            "data": entry("lifehistory", ("competitive", "stress-tolerant", "weedy")),
        },
        {
            "name": "countries",
            "data": entry("country", ("Belize", "Fiji", "Indonesia", "Kenya", "Mozambique")),
        },
        {"name": "growthforms", "data": growth_forms},
        {"name": "regions", "data": entry("region", ("Indo-Pacific", "Western Atlantic", "Eastern Pacific"))},
        {"name": "reefexposures", "data": entry("reefexposure", ("exposed", "semi-exposed", "sheltered"))},
    ]
