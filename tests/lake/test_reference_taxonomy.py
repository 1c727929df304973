"""Ingest the real MERMAID taxonomy (738 BAs, 11 GFs, 711 CoralNet label mappings) served over HTTP."""

from __future__ import annotations

import csv
from collections.abc import Iterator

import pytest
from mermaid_data.demo import DemoSummary
from mermaid_data.ingest import IngestReport
from mermaid_data.lake import Lake

from tests.support.api_server import ApiServer
from tests.support.reference import REFERENCE_DIR, load_reference_payloads


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
    with (REFERENCE_DIR / name).open(newline="", encoding="utf-8-sig") as handle:
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
    bas = {r["id"]: r for r in reference_rows("benthic_attribute.csv")}
    got = {r[0]: r for r in lake.sql("SELECT id, name, parent_id FROM benthic_attributes").rows()}
    assert set(got) == set(bas)
    for ba_id, (_, name, parent) in got.items():
        assert name == bas[ba_id]["name"]
        assert parent == (None if bas[ba_id]["parent_id"] == "NULL" else bas[ba_id]["parent_id"])
    assert lake.sql("SELECT count(*) FROM benthic_attributes WHERE parent_id IS NULL").item() == 12
    gf_names = set(lake.sql("SELECT name FROM growth_forms")["name"])
    assert gf_names == {r["name"] for r in reference_rows("growth_forms.csv")}

    seed = reference_rows("initial_label_pop.csv")
    with_gf = sum(1 for r in seed if r["MermaidGfID"] != "NA")
    counts = lake.sql(
        "SELECT count(*) FILTER (WHERE growth_form_id = ''), count(*) FILTER (WHERE growth_form_id IS NULL), "
        "count(*) FILTER (WHERE benthic_attribute_id NOT IN (SELECT id FROM benthic_attributes)) FROM label_mappings"
    ).row(0)
    assert counts == (711 - with_gf, 0, 0)
    pairs = set(
        lake.sql("SELECT provider_id, benthic_attribute_id, growth_form_id FROM label_mappings").rows()
    )
    assert pairs == {
        (r["CoralNetID"], r["MermaidBaID"], "" if r["MermaidGfID"] == "NA" else r["MermaidGfID"])
        for r in seed
    }


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
