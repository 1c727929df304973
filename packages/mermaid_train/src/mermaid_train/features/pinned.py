"""Which feature object each snapshot row names, as the snapshot pinned it.

A snapshot's manifest pins the Delta version of every table its rows were shaped from (``features``
among them); the lake version it was built on (``mermaid_data.snapshot.lifecycle.snapshot_lake_version``)
also pins ``sources``. ``feature_objects`` reads both there:

- ``sources.root_uri``: feature keys are relative to their source's root, and a source re-ingested from
  a new location later must not make an old snapshot read the new location;
- ``features``: each object's size and ETag (local files: size and mtime), so the feature cache keys on
  what the snapshot names (``FeatureCache``: URI + size + ETag) and refuses an object replaced since.

When a source's pinned root is not its current one and is gone, training stops, naming it.
"""

from __future__ import annotations

import hashlib

import polars as pl
from mermaid_data import storage
from mermaid_data.lake import Lake
from mermaid_data.snapshot.lifecycle import snapshot_lake_version

from mermaid_train.errors import FeatureError

OBJECT_COLUMNS = ("feature_uri", "feature_size", "feature_etag")


def pinned_versions(lake: Lake, manifest: dict | None) -> tuple[dict[str, int], dict[str, int]]:
    """``(versions read, current versions)`` of ``sources`` and ``features``: the snapshot's (its lake
    version's ``sources``, its recipe's ``features``) or, without a manifest, the latest lake version's."""
    current = {name: v for name, v in lake.versions().items() if name in ("sources", "features")}
    if manifest is None:
        return current, current
    pinned = dict(current)
    built_on = snapshot_lake_version(lake, manifest)
    if built_on is not None and "sources" in built_on.tables:
        pinned["sources"] = built_on.tables["sources"]
    features = manifest.get("recipe", {}).get("input_versions", {}).get("features")
    if features is not None:
        pinned["features"] = int(features)
    return pinned, current


def _read(lake: Lake, versions: dict[str, int]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(sources, features) at ``versions`` (a table not in it is empty)."""
    con = lake.connect(versions)
    try:
        sources = pl.from_arrow(con.execute("SELECT site, source_id, root_uri FROM sources").to_arrow_table())
        features = pl.from_arrow(con.execute(
            "SELECT site, source_id, feature_key, size_bytes, etag FROM features").to_arrow_table())
    finally:
        con.close()
    return sources.unique(["site", "source_id"], keep="last"), features.unique(
        ["site", "source_id", "feature_key"], keep="last")


def feature_objects(lake: Lake, rows: pl.DataFrame, manifest: dict | None = None) -> pl.DataFrame:
    """``rows`` plus ``feature_uri`` (the pinned root + "/" + ``feature_key``; null if unknown),
    ``feature_size`` and ``feature_etag`` (null when the pinned ``features`` table lacks the object)."""
    pinned, current = pinned_versions(lake, manifest)
    sources, features = _read(lake, pinned)
    joined = rows.drop(*OBJECT_COLUMNS, strict=False).join(
        sources.rename({"root_uri": "__root"}), on=["site", "source_id"], how="left", maintain_order="left")
    joined = joined.join(features.rename({"size_bytes": "feature_size", "etag": "feature_etag"}),
                         on=["site", "source_id", "feature_key"], how="left", maintain_order="left")
    out = joined.with_columns(
        (pl.col("__root").str.strip_chars_end("/") + "/" + pl.col("feature_key").str.strip_chars_start("/"))
        .alias("feature_uri"))
    if manifest is not None and pinned.get("sources") != current.get("sources"):
        _check_moved_roots(lake, out, pinned["sources"], current["sources"], manifest)
    return out.drop("__root")


def _check_moved_roots(lake: Lake, rows: pl.DataFrame, version: int, current: int, manifest: dict) -> None:
    """A source whose pinned root differs from its current one: its first feature object must still be
    at the pinned root; otherwise stop, naming the root (the rows would silently lose their features)."""
    now, _ = _read(lake, {"sources": current})
    used = (rows.filter(pl.col("feature_uri").is_not_null())
            .group_by("site", "source_id", maintain_order=True).agg(pl.col("__root").first(), pl.col("feature_uri").first())
            .join(now.rename({"root_uri": "__now"}), on=["site", "source_id"], how="left"))
    for site, source_id, root, first, root_now in used.select("site", "source_id", "__root", "feature_uri",
                                                               "__now").iter_rows():
        if root_now is None or root_now == root or storage.exists(storage.Uri.parse(first)):
            continue
        sid = manifest.get("snapshot_id", "the snapshot")
        raise FeatureError(
            f"{sid} reads {site} source {source_id}'s feature files under its root at lake version {version}, "
            f"which is gone (e.g. {first}); the source was re-ingested from {root_now} since",
            where=root,
            fix=f"restore {root} (the snapshot's features are there), or build a new snapshot from the current "
            "lake (`mermaid-data snapshot create`) and train that",
        )


def objects_digest(rows: pl.DataFrame) -> str:
    """SHA-256 of the distinct (feature URI, size, ETag) the rows name, sorted: what a pack was read from."""
    objects = (rows.select(*OBJECT_COLUMNS).unique()
               .select(pl.concat_str([pl.col(c).cast(pl.String).fill_null("-") for c in OBJECT_COLUMNS],
                                     separator="\t").alias("line"))
               .sort("line"))
    return hashlib.sha256("\n".join(objects["line"].to_list()).encode("utf-8")).hexdigest()
