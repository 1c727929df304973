"""The seed documentation's rollup and exclusion examples, verbatim, visibly change the demo lake.

The demo is built on the real MERMAID taxonomy, so the seed's real ids (Acropora::Branching,
Porites::Massive, Hard coral, Other) name rows of the tiny demo lake.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mermaid_data.lake import Lake
from mermaid_data.snapshot import SnapshotSpec

from tests.support.seed_docs import seed_exclusions_csv, seed_rollups_csv

ACROPORA = "050c0689-0b01-4a6c-afbf-a5d3ca39c310"
HARD_CORAL = "350e9eb4-5e6b-48f5-aeb8-0bfdf023bf1c"
PORITES = "2b55697f-f26e-433e-9070-f1fe9748bf7b"
OTHER = "31c5af16-30d7-4966-97f4-01889a5cf973"
BRANCHING = "cf2deca6-53b8-4096-916f-32c2c71d14bf"
MASSIVE = "888609b5-b58a-4d57-addc-a6935bba284b"


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory: pytest.TempPathFactory, demo_sources, ingest_demo) -> Lake:
    lake_dir = tmp_path_factory.mktemp("seed-recipes") / "lake"
    ingest_demo(lake_dir, demo_sources.dest)
    return Lake.open(str(lake_dir))


def _classes(lake: Lake, snapshot_id: str) -> dict[tuple[str, str], int]:
    rows = lake.sql(f"SELECT benthic_attribute_id, growth_form_id, count(*) FROM snapshot('{snapshot_id}') GROUP BY ALL")
    return {(ba, gf): n for ba, gf, n in rows.rows()}


def _all_sources(lake: Lake, path: Path) -> Path:
    ids = lake.sql("SELECT DISTINCT source_id FROM annotations WHERE site = 'coralnet' ORDER BY source_id")
    path.write_text("id\n" + "".join(f"{i}\n" for i in ids["source_id"]))
    return path


def test_seed_rollup_example_moves_acropora_branching_to_hard_coral_branching(demo_lake: Lake, tmp_path: Path) -> None:
    """Bug pinned: the seed's rollup example changing nothing on the demo lake (synthetic ids)."""
    sources = _all_sources(demo_lake, tmp_path / "sources.csv")
    rollups = tmp_path / "coral_rollups.csv"
    rollups.write_text(seed_rollups_csv())
    before = _classes(demo_lake, demo_lake.create_snapshot(SnapshotSpec(coralnet_sources_csv=sources)).snapshot_id)
    after = _classes(demo_lake, demo_lake.create_snapshot(
        SnapshotSpec(coralnet_sources_csv=sources, label_rollup_spec_csv=rollups)).snapshot_id)
    moved = before[(ACROPORA, BRANCHING)]
    assert moved > 0 and before[(PORITES, MASSIVE)] > 0
    assert (ACROPORA, BRANCHING) not in after and (PORITES, MASSIVE) not in after
    assert after[(HARD_CORAL, BRANCHING)] == before.get((HARD_CORAL, BRANCHING), 0) + moved
    assert after[(PORITES, "")] == before.get((PORITES, ""), 0) + before[(PORITES, MASSIVE)]
    assert sum(after.values()) == sum(before.values())


def test_seed_exclusion_example_drops_other_and_acropora_branching(demo_lake: Lake, tmp_path: Path) -> None:
    """Bug pinned: the seed's exclusion example leaving Other in the snapshot of the demo lake."""
    sources = _all_sources(demo_lake, tmp_path / "sources.csv")
    exclusions = tmp_path / "exclusions.csv"
    exclusions.write_text(seed_exclusions_csv())
    before = _classes(demo_lake, demo_lake.create_snapshot(SnapshotSpec(coralnet_sources_csv=sources)).snapshot_id)
    excluded = demo_lake.create_snapshot(SnapshotSpec(coralnet_sources_csv=sources, excluded_labels_csv=exclusions))
    after = _classes(demo_lake, excluded.snapshot_id)
    assert before[(OTHER, "")] > 0
    assert (OTHER, "") not in after and (ACROPORA, BRANCHING) not in after
    assert sum(after.values()) == sum(before.values()) - before[(OTHER, "")] - before[(ACROPORA, BRANCHING)]
    dropped = {r["reason"]: r["dropped"] for r in excluded.manifest["stage_counts"]}
    # step 5 counts before step 6 drops rows without features, so it may count a few rows more
    assert dropped["label_excluded"] >= before[(OTHER, "")] + before[(ACROPORA, BRANCHING)]
