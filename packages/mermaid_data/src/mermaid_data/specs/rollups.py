"""``spec rollups``: every benthic attribute rolled up to its ancestor at a level of the pinned tree."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from mermaid_data.errors import SourceFormatError, TaxonomyError
from mermaid_data.lake import Lake
from mermaid_data.snapshot.spec import FIXES, read_spec_csv
from mermaid_data.specs.models import RollupLevel, RollupMode, SpecCsv, SpecKind
from mermaid_data.sqlfiles import load_sql

#: The tables a rollup spec is computed from (their versions are reported with it).
INPUTS = ("annotations", "benthic_attributes", "growth_forms", "label_mappings")


def rollup_spec(lake: Lake, to: RollupLevel | str, *, drop_growthforms: bool = False) -> SpecCsv:
    """The rollup CSV that sends every (BA, GF) pair to ``to`` (see sql/spec/rollups.sql).

    ``to`` is a ``RollupLevel`` or its text (``"root"``, ``"depth 2"``, a targets CSV path). With
    ``drop_growthforms`` every rule's target has no growth form.
    """
    level = RollupLevel.parse(to) if isinstance(to, str) else to
    targets = _read_targets(level.targets_csv) if level.mode is RollupMode.TARGETS else []
    lake.require()
    versions = lake.versions()
    con = lake.connect(versions)
    try:
        con.execute(f"CREATE TEMP TABLE lineage AS {load_sql('spec/ba_lineage')}")
        _check_tree(con, lake)
        con.register("spec_targets", pa.table({"ba_id": pa.array(targets, pa.string())}))
        if targets:
            _check_targets(con, level.targets_csv)
        params = {"mode": level.mode.value, "depth": level.depth or 0, "drop_growthforms": drop_growthforms}
        frame = pl.from_arrow(con.execute(load_sql("spec/rollups"), params).to_arrow_table())
    finally:
        con.close()
    growth = "growth forms dropped" if drop_growthforms else "growth forms kept"
    return SpecCsv(SpecKind.ROLLUPS, frame, f"every benthic attribute {level.describe()}, {growth}",
                   {name: versions[name] for name in INPUTS if name in versions})


def _read_targets(path: Path) -> list[str]:
    table = read_spec_csv(path, "targets")
    if not table.rows:
        raise SourceFormatError("has a header but no benthic attribute ids", where=str(path), column="ba_id",
                                fix=FIXES["targets"])
    return [row[0] for row in table.rows]


def _check_tree(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    problems = con.execute(load_sql("spec/taxonomy_problems")).fetchall()
    if not problems:
        return
    kind, _ba, chain = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    what = "parents form a cycle" if kind == "cycle" else "has a parent that is no benthic attribute"
    raise TaxonomyError(
        f"benthic attribute {what}: {chain}{more}", where=lake.table_uri("benthic_attributes"),
        fix="fix the parents in the MERMAID API pages and re-ingest (`mermaid-data ingest --api URL|DIR`)",
    )


def _check_targets(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    unknown = [r[0] for r in con.execute(load_sql("spec/unknown_targets")).fetchall()]
    if not unknown:
        return
    more = f" (and {len(unknown) - 1} more: {', '.join(unknown[1:4])}{', ...' if len(unknown) > 4 else ''})" \
        if len(unknown) > 1 else ""
    raise SourceFormatError(
        f"target {unknown[0]} is not a benthic attribute of the lake{more}", where=str(path),
        row=_line_of(path, unknown[0]), column="ba_id",
        fix="use ids of the lake's taxonomy (`mermaid-data sql \"SELECT id, name FROM benthic_attributes\"`)",
    )


def _line_of(path: Path, value: str) -> int | None:
    """The first line (from 1) of ``path`` that holds ``value`` (ids are compared lower-case)."""
    lines = path.read_text(encoding="utf-8-sig").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, line in enumerate(lines, start=1):
        if value in line.lower():
            return number
    return None
