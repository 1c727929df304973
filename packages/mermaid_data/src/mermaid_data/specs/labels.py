"""``spec labels``: the include list of (BA, GF) classes with enough annotations after a recipe's rollups.

Counted by the snapshot's own steps 1-4 (``snapshot.build``'s recipe, pinned connection and shaping
query over the label groups), so a class's count is what a snapshot of the same recipe holds before
include/exclude.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mermaid_data.errors import ConfigError
from mermaid_data.lake import Lake
from mermaid_data.snapshot.build import build_recipe, check_sources, open_pinned, shaping_query
from mermaid_data.snapshot.spec import SnapshotSpec
from mermaid_data.specs.models import LabelSpec, SpecKind
from mermaid_data.sqlfiles import load_sql

#: Steps 1-4: map, sources, drop growth forms, rollup.
THROUGH_ROLLUP = 4
#: The include CSV's columns: the two ``snapshot create --include`` reads, names and counts for people.
OUTPUT_COLUMNS = ("ba_id", "ba_name", "gf_id", "gf_name", "annotations")


def label_spec(
    lake: Lake,
    *,
    min_annotations: int,
    top: int | None = None,
    rollups_csv: str | Path | None = None,
    drop_growthforms: bool = False,
    coralnet_sources_csv: str | Path | None = None,
    include_mermaid: bool = True,
) -> LabelSpec:
    """Classes with at least ``min_annotations`` annotations (the ``top`` largest if given).

    The recipe options mean what they mean to ``snapshot create``: no ``coralnet_sources_csv`` means no
    CoralNet; ``drop_growthforms`` applies before ``rollups_csv``.
    """
    _check_count(min_annotations, "--min-annotations", "1 keeps every class")
    if top is not None:
        _check_count(top, "--top", "leave --top out to keep every class with enough annotations")
    spec = SnapshotSpec(include_mermaid=include_mermaid, coralnet_sources_csv=coralnet_sources_csv,
                        drop_growthforms=drop_growthforms, label_rollup_spec_csv=rollups_csv)
    recipe = build_recipe(lake, spec)
    con = open_pinned(lake, recipe)
    try:
        check_sources(con, recipe)
        params = {
            "include_mermaid": recipe.options["include_mermaid"],
            "drop_growthforms": recipe.options["drop_growthforms"],
            "min_annotations": min_annotations,
            "top": top,
        }
        counted = pl.from_arrow(
            con.execute(shaping_query(load_sql("spec/labels"), through=THROUGH_ROLLUP), params).to_arrow_table())
    finally:
        con.close()
    kept = counted.filter(pl.col("drop_reason").is_null()).select(OUTPUT_COLUMNS)
    return LabelSpec(SpecKind.INCLUDE, kept, _describe(recipe, min_annotations, top), dict(recipe.input_versions),
                     counted=counted, min_annotations=min_annotations, top=top)


def _check_count(value: int, option: str, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{option} {value!r} is not a positive integer", fix=f"pass {option} N with N >= 1 ({hint})")


def _describe(recipe, min_annotations: int, top: int | None) -> str:
    sources = recipe.specs.get("sources")
    parts = [
        "MERMAID" if recipe.options["include_mermaid"] else "no MERMAID",
        f"{len(sources.rows)} CoralNet source(s) of {sources.path}" if sources else "no CoralNet",
    ]
    if recipe.options["drop_growthforms"]:
        parts.append("growth forms dropped")
    if "rollups" in recipe.specs:
        parts.append(f"rolled up by {recipe.specs['rollups'].path}")
    keep = f"at least {min_annotations:,} annotations" + (f", the {top:,} largest" if top else "")
    return f"classes with {keep} ({', '.join(parts)})"
