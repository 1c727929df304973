"""``spec sources``: the CoralNet sources CSV of the sources with at least N images."""

from __future__ import annotations

import polars as pl

from mermaid_data.errors import ConfigError
from mermaid_data.lake import Lake
from mermaid_data.specs.models import SpecCsv, SpecKind
from mermaid_data.sqlfiles import load_sql


def source_spec(lake: Lake, *, min_images: int) -> SpecCsv:
    """Every CoralNet source of the lake with at least ``min_images`` images (see sql/spec/sources.sql)."""
    if isinstance(min_images, bool) or not isinstance(min_images, int) or min_images < 1:
        raise ConfigError(f"--min-images {min_images!r} is not a positive integer",
                          fix="pass --min-images N with N >= 1 (1 lists every source)")
    lake.require()
    versions = lake.versions()
    con = lake.connect(versions)
    try:
        frame = pl.from_arrow(con.execute(load_sql("spec/sources"), {"min_images": min_images}).to_arrow_table())
    finally:
        con.close()
    return SpecCsv(SpecKind.SOURCES, frame, f"the sources with at least {min_images:,} image{'' if min_images == 1 else 's'}",
                   {"annotations": versions["annotations"]})
