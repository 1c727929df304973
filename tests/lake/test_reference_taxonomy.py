"""Ingest the real MERMAID taxonomy (738 BAs, 11 GFs, 711 CoralNet label mappings) served over HTTP.

The taxonomy is the bundle shipped with mermaid_data (``mermaid_data/taxonomy/data/``), served as
paginated API pages by a real local HTTP server; the lake's tables are checked against the bundle's CSV
files read directly, and against a few facts of the real taxonomy checked by hand.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

import pytest
from mermaid_data.demo import DemoSummary
from mermaid_data.ingest import IngestReport
from mermaid_data.lake import Lake
from mermaid_data.taxonomy import BUNDLE_DIR

from tests.support.api_server import ApiServer
from tests.support.reference import load_reference_payloads


@pytest.fixture(scope="module")
def reference_server() -> Iterator[ApiServer]:
    with ApiServer(*load_reference_payloads(), page_size_cap=200) as server:
        yield server


@pytest.fixture(scope="module")
def reference_lake(
    tmp_path_factory: pytest.TempPathFactory,
    demo_sources: DemoSummary,
    reference_server: ApiServer,
    ingest_demo,
) -> tuple[Lake, IngestReport]:
    lake_dir = tmp_path_factory.mktemp("reference") / "lake"
    report = ingest_demo(lake_dir, demo_sources.dest, api=reference_server.base_url)
    return Lake.open(str(lake_dir)), report


def reference_rows(name: str) -> list[dict[str, str]]:
    with (BUNDLE_DIR / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_real_taxonomy_table_sizes(
    reference_lake: tuple[Lake, IngestReport], reference_server: ApiServer
) -> None:
    """Bug pinned: real pages (several per listing, extra keys, null parents/GFs) losing or rejecting rows."""
    lake, report = reference_lake
    assert report.taxonomy_action == "new"
    assert len(reference_server.requests_to("benthicattributes/")) >= 4  # 738 rows at 200 a page
    assert len(reference_server.requests_to("classification/labelmappings/")) >= 4
    assert lake.sql("SELECT count(*) FROM benthic_attributes").item() == 738
    assert lake.sql("SELECT count(*) FROM growth_forms").item() == 11
    assert lake.sql("SELECT count(*) FROM label_mappings").item() == 711


def test_real_taxonomy_content(reference_lake: tuple[Lake, IngestReport]) -> None:
    """Bug pinned: ids, parents or growth forms altered on the way in (NULL GF, lost parents, renamed)."""
    lake, _ = reference_lake
    bas = {r["id"]: r for r in reference_rows("benthic_attributes.csv")}
    got = {r[0]: r for r in lake.sql("SELECT id, name, parent_id FROM benthic_attributes").rows()}
    assert set(got) == set(bas)
    for ba_id, (_, name, parent) in got.items():
        assert name == bas[ba_id]["name"]
        assert parent == (bas[ba_id]["parent_id"] or None)
    assert lake.sql("SELECT count(*) FROM benthic_attributes WHERE parent_id IS NULL").item() == 12
    gf_names = set(lake.sql("SELECT name FROM growth_forms")["name"])
    assert gf_names == {r["name"] for r in reference_rows("growth_forms.csv")}

    seed = reference_rows("label_mappings.csv")
    with_gf = sum(1 for r in seed if r["growth_form_id"])
    assert with_gf == 81  # the real mapping: 81 of 711 CoralNet labels also name a growth form
    counts = lake.sql(
        "SELECT count(*) FILTER (WHERE growth_form_id = ''), count(*) FILTER (WHERE growth_form_id IS NULL), "
        "count(*) FILTER (WHERE benthic_attribute_id NOT IN (SELECT id FROM benthic_attributes)) FROM label_mappings"
    ).row(0)
    assert counts == (711 - with_gf, 0, 0)
    pairs = set(
        lake.sql("SELECT provider_id, benthic_attribute_id, growth_form_id FROM label_mappings").rows()
    )
    assert pairs == {(r["provider_id"], r["benthic_attribute_id"], r["growth_form_id"]) for r in seed}


def test_real_taxonomy_facts_checked_by_hand(reference_lake: tuple[Lake, IngestReport]) -> None:
    """Bug pinned: a bundle that is not the real MERMAID taxonomy (the seed document's ids must resolve)."""
    lake, _ = reference_lake
    names = dict(lake.sql("SELECT id, name FROM benthic_attributes").rows())
    # the seed documentation's example ids
    assert names["050c0689-0b01-4a6c-afbf-a5d3ca39c310"] == "Acropora"
    assert names["350e9eb4-5e6b-48f5-aeb8-0bfdf023bf1c"] == "Hard coral"
    assert names["2b55697f-f26e-433e-9070-f1fe9748bf7b"] == "Porites"
    assert names["31c5af16-30d7-4966-97f4-01889a5cf973"] == "Other"
    gfs = dict(lake.sql("SELECT id, name FROM growth_forms").rows())
    assert gfs["cf2deca6-53b8-4096-916f-32c2c71d14bf"] == "Branching"
    assert gfs["888609b5-b58a-4d57-addc-a6935bba284b"] == "Massive"
    acropora_path = lake.sql(
        "SELECT p.name AS parent, g.name AS grandparent FROM benthic_attributes a JOIN benthic_attributes p ON p.id = a.parent_id "
        "JOIN benthic_attributes g ON g.id = p.parent_id WHERE a.id = '050c0689-0b01-4a6c-afbf-a5d3ca39c310'"
    ).row(0)
    assert acropora_path == ("Acroporidae", "Hard coral")
    turf = lake.sql("SELECT provider_label, benthic_attribute_name, growth_form_id FROM label_mappings "
                    "WHERE provider_id = '82'").row(0)
    assert turf == ("Turf algae", "Turf algae", "")
    counts = {
        r["provider_id"]: int(r["public_annotation_count"]) for r in reference_rows("coralnet_label_counts.csv")
    }
    assert len(counts) == 711 and sum(counts.values()) == 19_739_370 and counts["82"] == 5_496_896


def test_label_mapping_resolved_has_one_row_per_provider_id(
    reference_lake: tuple[Lake, IngestReport],
) -> None:
    """Bug pinned: the resolved mapping fanning out (or dropping) a CoralNet label id of the real mapping."""
    lake, _ = reference_lake
    provider_ids = set(lake.sql("SELECT DISTINCT provider_id FROM label_mappings")["provider_id"])
    resolved = lake.sql("SELECT label_id, benthic_attribute_id, growth_form_id FROM label_mapping_resolved")
    assert resolved.height == len(provider_ids) == resolved["label_id"].n_unique()
    assert set(resolved["label_id"]) == provider_ids
    assert resolved["growth_form_id"].null_count() == 0
    # every resolved pair is one the mapping really lists for that label
    listed = set(
        lake.sql("SELECT provider_id, benthic_attribute_id, growth_form_id FROM label_mappings").rows()
    )
    assert set(resolved.rows()) <= listed
    # conflicts (if the real data has any) are reported with exactly one chosen pair per label
    conflicts = lake.sql(
        "SELECT label_id, sum(CASE WHEN chosen THEN 1 ELSE 0 END) AS n FROM label_mapping_conflicts GROUP BY ALL"
    )
    assert all(n == 1 for n in conflicts["n"])


def test_demo_annotations_against_the_real_mapping(
    reference_lake: tuple[Lake, IngestReport], demo_sources: DemoSummary
) -> None:
    """Bug pinned: mapped + unmapped not adding up once the mapping changes to the real one."""
    lake, _ = reference_lake
    coralnet = lake.sql("SELECT count(*) FROM annotations WHERE site = 'coralnet'").item()
    assert coralnet == demo_sources.coralnet_rows
    mapped = lake.sql("SELECT count(*) FROM annotations_mapped WHERE site = 'coralnet'").item()
    unmapped = lake.sql("SELECT count(*) FROM unmapped_annotations").item()
    assert mapped + unmapped == coralnet
    known = lake.sql(
        "SELECT count(*) FROM annotations WHERE site = 'coralnet' "
        "AND label_id IN (SELECT provider_id FROM label_mappings)"
    ).item()
    assert mapped == known
    assert (
        lake.sql("SELECT count(*) FROM annotations_mapped WHERE site = 'mermaid'").item()
        == demo_sources.mermaid_rows
    )
