"""Ingest of the demo sources: the SQL contract, counts, ids, mapping views, features, idempotence, dry run."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from mermaid_data.cli import app
from mermaid_data.demo import DemoSummary
from mermaid_data.ingest import IngestReport
from mermaid_data.lake import DERIVED_VIEWS, Lake
from typer.testing import CliRunner

from tests.support.api_server import ApiServer

CONTRACT_COLUMNS = [
    "site",
    "source_id",
    "image_id",
    "row",
    "col",
    "label_id",
    "benthic_attribute_id",
    "growth_form_id",
    "feature_key",
    "annotation_id",
]
MERMAID_PARQUET = "mermaid/mermaid_confirmed_annotations.parquet"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def csv_counts(coralnet_root: Path) -> dict[str, int]:
    """Rows per CoralNet source, read straight from the CSVs (polars, not the code under test)."""
    return {
        str(int(d.name[1:])): pl.read_csv(d / "annotations.csv", infer_schema=False).height
        for d in sorted(coralnet_root.iterdir())
        if d.is_dir()
    }


def features_on_disk(src: Path) -> set[tuple[str, str, int]]:
    """(site, feature_key, size) of every feature file under a demo tree."""
    out = set()
    for path in (src / "mermaid").iterdir():
        if path.name.endswith("_featurevector"):
            out.add(("mermaid", path.name, path.stat().st_size))
    for path in (src / "coralnet").glob("s*/features/*"):
        key = path.relative_to(src / "coralnet").as_posix()
        out.add(("coralnet", key, path.stat().st_size))
    return out


def table_files(lake: Lake, name: str) -> dict[str, set[str]]:
    """The Parquet files of each (site/source) partition of a table's current version."""
    out: dict[str, set[str]] = {}
    for uri in lake.delta(name).file_uris():
        match = re.search(r"site=([^/]+)/source_id=([^/]+)/", uri)
        key = f"{match.group(1)}:{match.group(2)}" if match else ""
        out.setdefault(key, set()).add(uri)
    return out


def copy_demo(demo: DemoSummary, dest: Path) -> Path:
    src = dest / "src"
    shutil.copytree(demo.dest, src)
    return src


def append_row(csv_path: Path) -> None:
    """Append a copy of the CSV's last line (a duplicate point: legal, and a real change)."""
    text = csv_path.read_text(encoding="utf-8")
    last = text.rstrip("\n").splitlines()[-1]
    csv_path.write_text(text.rstrip("\n") + "\n" + last + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def ingested(
    tmp_path_factory: pytest.TempPathFactory, demo_sources: DemoSummary, ingest_demo
) -> tuple[Lake, IngestReport]:
    lake_dir = tmp_path_factory.mktemp("lake") / "lake"
    report = ingest_demo(lake_dir, demo_sources.dest)
    return Lake.open(str(lake_dir)), report


@pytest.fixture(scope="module")
def lake(ingested: tuple[Lake, IngestReport]) -> Lake:
    return ingested[0]


def scalar(lake: Lake, query: str, params: Any = None) -> Any:
    return lake.sql(query, params).row(0)[0]


# --------------------------------------------------------------------------------------------------
# counts and the SQL contract
# --------------------------------------------------------------------------------------------------


def test_row_counts_per_site_and_source_equal_the_sources(lake: Lake, demo_sources: DemoSummary) -> None:
    """Bug pinned: rows lost or duplicated on the way in (per site, and per CoralNet source)."""
    per_site = dict(lake.sql("SELECT site, count(*) FROM annotations GROUP BY site").rows())
    assert per_site == {"mermaid": demo_sources.mermaid_rows, "coralnet": demo_sources.coralnet_rows}
    per_source = dict(
        lake.sql("SELECT source_id, count(*) FROM annotations WHERE site = 'coralnet' GROUP BY ALL").rows()
    )
    assert per_source == csv_counts(demo_sources.dest / "coralnet")
    assert len(per_source) == demo_sources.coralnet_sources
    assert scalar(lake, "SELECT count(DISTINCT source_id) FROM annotations WHERE site = 'mermaid'") == 1
    assert scalar(lake, "SELECT min(source_id) FROM annotations WHERE site = 'mermaid'") == "mermaid"


def test_contract_views_exist_with_their_columns(lake: Lake) -> None:
    """Bug pinned: a contract view missing or a contract column renamed/retyped (users' queries break)."""
    views = set(lake.sql("SELECT table_name FROM information_schema.tables")["table_name"])
    assert set(DERIVED_VIEWS) <= views
    assert {
        "annotations",
        "annotations_mapped",
        "unmapped_annotations",
        "label_mapping_resolved",
        "label_mapping_conflicts",
    } <= views
    for view in ("annotations", "annotations_mapped", "unmapped_annotations"):
        described = dict(lake.sql(f"DESCRIBE {view}").select("column_name", "column_type").rows())
        missing = [c for c in CONTRACT_COLUMNS if c not in described]
        assert not missing, f"{view} lacks {missing}"
        for text_column in (
            "site",
            "source_id",
            "image_id",
            "label_id",
            "benthic_attribute_id",
            "growth_form_id",
            "feature_key",
            "annotation_id",
        ):
            assert described[text_column] == "VARCHAR", (view, text_column, described[text_column])
        assert described["row"] in ("INTEGER", "BIGINT", "SMALLINT", "USMALLINT")
        assert described["col"] in ("INTEGER", "BIGINT", "SMALLINT", "USMALLINT")
    # annotations_mapped has the same columns as annotations
    a = lake.sql("DESCRIBE annotations")["column_name"].to_list()
    m = lake.sql("DESCRIBE annotations_mapped")["column_name"].to_list()
    assert a == m


def test_raw_facts_per_site(lake: Lake) -> None:
    """Bug pinned: MERMAID rows given a label id, or CoralNet rows stored with a guessed BA/GF."""
    rows = lake.sql(
        """
        SELECT site,
               count(*) FILTER (WHERE label_id IS NOT NULL) AS with_label,
               count(*) FILTER (WHERE benthic_attribute_id IS NOT NULL) AS with_ba,
               count(*) FILTER (WHERE growth_form_id IS NULL) AS null_gf,
               count(*) FILTER (WHERE label_id IS NOT NULL AND NOT regexp_full_match(label_id, '[0-9]+')) AS bad_label
        FROM annotations GROUP BY site
        """
    ).rows_by_key("site", named=True, unique=True)
    total = dict(lake.sql("SELECT site, count(*) FROM annotations GROUP BY site").rows())
    assert rows["mermaid"] == {"with_label": 0, "with_ba": total["mermaid"], "null_gf": 0, "bad_label": 0}
    assert rows["coralnet"]["with_label"] == total["coralnet"]
    assert rows["coralnet"]["bad_label"] == 0
    ba = lake.sql("SELECT DISTINCT benthic_attribute_id FROM annotations WHERE site = 'mermaid'")
    assert all(UUID.match(v) for v in ba["benthic_attribute_id"])


def test_growth_form_is_empty_string_never_null(lake: Lake, demo_sources: DemoSummary) -> None:
    """Bug pinned: 'None' / NULL growth forms leaking into the lake instead of ''."""
    raw = pl.read_parquet(demo_sources.dest / MERMAID_PARQUET)
    assert (raw["growth_form_id"] == "None").sum() > 0, "the demo should carry the literal 'None'"
    for view in ("annotations_mapped",):
        assert scalar(lake, f"SELECT count(*) FROM {view} WHERE growth_form_id IS NULL") == 0
        assert scalar(lake, f"SELECT count(*) FROM {view} WHERE benthic_attribute_id IS NULL") == 0
    assert (
        scalar(lake, "SELECT count(*) FROM annotations WHERE site = 'mermaid' AND growth_form_id IS NULL")
        == 0
    )
    bad = lake.sql(
        "SELECT DISTINCT growth_form_id FROM annotations_mapped "
        "WHERE growth_form_id <> '' AND NOT regexp_full_match(growth_form_id, '[0-9a-f-]{36}')"
    )
    assert bad.height == 0, bad
    # MERMAID's 'None' became '' one for one
    assert scalar(
        lake, "SELECT count(*) FROM annotations WHERE site = 'mermaid' AND growth_form_id = ''"
    ) == int((raw["growth_form_id"] == "None").sum())
    # CoralNet rows mapped without a growth form get '' too
    assert (
        scalar(
            lake, "SELECT count(*) FROM annotations_mapped WHERE site = 'coralnet' AND growth_form_id = ''"
        )
        > 0
    )


def test_feature_keys_are_relative_to_the_source_root(lake: Lake) -> None:
    """Bug pinned: absolute or mis-shaped feature keys (digests would depend on where the lake lives)."""
    frame = lake.sql("SELECT site, source_id, image_id, feature_key FROM annotations")
    cn = frame.filter(pl.col("site") == "coralnet")
    expected_cn = "s" + cn["source_id"] + "/features/i" + cn["image_id"] + ".featurevector"
    assert (cn["feature_key"] == expected_cn).all()
    assert cn["feature_key"].str.contains(r"^s\d+/features/i\d+\.featurevector$").all()
    mm = frame.filter(pl.col("site") == "mermaid")
    assert (mm["feature_key"] == mm["image_id"] + "_featurevector").all()
    assert mm["feature_key"].str.contains(r"^[0-9a-f-]{36}_featurevector$").all()
    assert not frame["feature_key"].str.contains("/tmp|://").any()


def test_annotation_id_unique_even_with_duplicate_points(lake: Lake, demo_sources: DemoSummary) -> None:
    """Bug pinned: duplicate points (same image/row/col) collapsing into one id, or dropped."""
    assert demo_sources.duplicate_points > 0
    dup_points = scalar(
        lake,
        'SELECT count(*) - count(DISTINCT (site, source_id, image_id, "row", col)) FROM annotations',
    )
    assert dup_points == demo_sources.duplicate_points
    total, distinct, nulls = lake.sql(
        "SELECT count(*), count(DISTINCT annotation_id), count(*) FILTER (WHERE annotation_id IS NULL) FROM annotations"
    ).row(0)
    assert (distinct, nulls) == (total, 0)
    mapped_total, mapped_distinct = lake.sql(
        "SELECT count(*), count(DISTINCT annotation_id) FROM annotations_mapped"
    ).row(0)
    assert mapped_total == mapped_distinct
    # MERMAID keeps its own ids
    raw = pl.read_parquet(demo_sources.dest / MERMAID_PARQUET)
    ids = set(lake.sql("SELECT annotation_id FROM annotations WHERE site = 'mermaid'")["annotation_id"])
    assert ids == set(raw["id"].str.to_lowercase())


def test_coralnet_annotation_ids_are_stable_across_lakes(
    lake: Lake, tmp_path: Path, demo_sources: DemoSummary, ingest_demo
) -> None:
    """Bug pinned: derived CoralNet ids depending on ingest order, time or location (not stable)."""
    src = copy_demo(demo_sources, tmp_path)
    # a second lake from a copy at another path, CoralNet only, the sources listed in reverse order
    listed = sorted(csv_counts(src / "coralnet"), key=int, reverse=True)
    ingest_demo(tmp_path / "lake2", src, mermaid=None, api=None, coralnet_sources=listed)
    other = Lake.open(str(tmp_path / "lake2"))
    query = (
        "SELECT annotation_id, feature_key, label_id FROM annotations WHERE site = 'coralnet' ORDER BY ALL"
    )
    assert lake.sql(query).equals(other.sql(query))


def test_mapped_and_unmapped_partition_the_coralnet_rows(lake: Lake, demo_sources: DemoSummary) -> None:
    """Bug pinned: mapped view dropping or inventing rows; unmapped rows leaking in with NULL BA."""
    total = scalar(lake, "SELECT count(*) FROM annotations")
    unmapped = scalar(lake, "SELECT count(*) FROM unmapped_annotations")
    assert unmapped == demo_sources.unmapped_label_rows > 0
    assert scalar(lake, "SELECT count(*) FROM annotations_mapped") == total - unmapped
    # no unmapped label id appears in the mapped view, and every unmapped label is really unknown
    assert (
        scalar(
            lake,
            "SELECT count(*) FROM annotations_mapped WHERE label_id IN (SELECT label_id FROM unmapped_annotations)",
        )
        == 0
    )
    assert (
        scalar(
            lake,
            "SELECT count(*) FROM unmapped_annotations WHERE label_id IN (SELECT provider_id FROM label_mappings)",
        )
        == 0
    )
    # mapped CoralNet rows carry the mapping's BA (a spot check through an independent join)
    mismatch = scalar(
        lake,
        """
        SELECT count(*) FROM annotations_mapped AS a
        WHERE a.site = 'coralnet' AND a.benthic_attribute_id NOT IN (
            SELECT benthic_attribute_id FROM label_mappings AS m WHERE m.provider_id = a.label_id)
        """,
    )
    assert mismatch == 0


def test_label_mapped_twice_gives_one_row_and_is_reported(lake: Lake) -> None:
    """Bug pinned: a label id mapped twice fanning out into two rows per annotation, or going unreported."""
    doubled = lake.sql(
        "SELECT provider_id FROM label_mappings GROUP BY provider_id "
        "HAVING count(DISTINCT (benthic_attribute_id, growth_form_id)) > 1"
    )["provider_id"].to_list()
    assert len(doubled) == 1, doubled
    label = doubled[0]
    raw = scalar(lake, "SELECT count(*) FROM annotations WHERE label_id = ?", [label])
    assert raw > 0, "the demo should use the doubly mapped label"
    mapped = lake.sql(
        "SELECT count(*), count(DISTINCT (benthic_attribute_id, growth_form_id)) FROM annotations_mapped "
        "WHERE label_id = ?",
        [label],
    ).row(0)
    assert mapped == (raw, 1)
    conflicts = lake.sql("SELECT * FROM label_mapping_conflicts")
    assert set(conflicts["label_id"]) == {label}
    assert conflicts.height == 2 and conflicts["chosen"].sum() == 1
    chosen = conflicts.filter(pl.col("chosen")).row(0, named=True)
    # the documented rule: the pair that sorts first by (benthic_attribute_id, growth_form_id, mapping_id)
    first = conflicts.sort("benthic_attribute_id", "growth_form_id", "mapping_id").row(0, named=True)
    assert chosen["mapping_id"] == first["mapping_id"]
    resolved = lake.sql("SELECT * FROM label_mapping_resolved WHERE label_id = ?", [label])
    assert resolved.height == 1
    assert resolved.row(0, named=True)["benthic_attribute_id"] == chosen["benthic_attribute_id"]
    assert scalar(lake, "SELECT count(*) - count(DISTINCT label_id) FROM label_mapping_resolved") == 0


def test_features_table_lists_exactly_the_files_on_disk(lake: Lake, demo_sources: DemoSummary) -> None:
    """Bug pinned: feature objects missed, invented, or listed with a wrong key/size/image."""
    listed = lake.sql("SELECT site, source_id, image_id, feature_key, size_bytes FROM features")
    assert {(r[0], r[3], r[4]) for r in listed.rows()} == features_on_disk(demo_sources.dest)
    assert listed.height == demo_sources.feature_files_written
    # feature rows join to annotations on the same key the annotations view derives
    orphan = scalar(
        lake,
        "SELECT count(*) FROM features AS f ANTI JOIN annotations AS a "
        "ON a.site = f.site AND a.source_id = f.source_id AND a.image_id = f.image_id "
        "AND a.feature_key = f.feature_key",
    )
    assert orphan == 0


def test_summary_figures(ingested: tuple[Lake, IngestReport], demo_sources: DemoSummary) -> None:
    """Bug pinned: the end-of-ingest summary miscounting duplicates, unmapped labels or missing features."""
    summary = ingested[1].summary
    assert summary["annotations"] == demo_sources.total_rows
    assert summary["mermaid_annotations"] == demo_sources.mermaid_rows
    assert summary["coralnet_annotations"] == demo_sources.coralnet_rows
    assert summary["sources"] == demo_sources.coralnet_sources + 1
    assert summary["images"] == demo_sources.mermaid_images + demo_sources.coralnet_images
    assert summary["duplicate_points"] == demo_sources.duplicate_points > 0
    assert summary["unmapped_annotations"] == demo_sources.unmapped_label_rows
    assert summary["images_missing_features"] == demo_sources.feature_files_missing > 0
    assert summary["feature_objects"] == demo_sources.feature_files_written
    assert summary["conflicting_label_ids"] == 1


def test_taxonomy_tables(lake: Lake, demo_sources: DemoSummary) -> None:
    """Bug pinned: taxonomy rows lost across API pages (the demo pages are paginated)."""
    assert scalar(lake, "SELECT count(*) FROM benthic_attributes") == demo_sources.benthic_attributes
    assert scalar(lake, "SELECT count(*) FROM growth_forms") == demo_sources.growth_forms == 11
    assert scalar(lake, "SELECT count(*) FROM label_mappings") == demo_sources.label_mappings
    assert scalar(lake, "SELECT count(*) FROM label_mappings WHERE growth_form_id IS NULL") == 0


def test_sources_table_records_each_source(lake: Lake, demo_sources: DemoSummary) -> None:
    """Bug pinned: the sources table missing a source, its root, fingerprint or counts."""
    sources = lake.sql("SELECT * FROM sources WHERE site <> 'api' ORDER BY site, source_id")
    assert sources.height == demo_sources.coralnet_sources + 1
    assert sources["fingerprint"].str.len_chars().min() > 0
    counts = dict(zip(sources["source_id"], sources["row_count"]))
    assert counts.pop("mermaid") == demo_sources.mermaid_rows
    assert counts == csv_counts(demo_sources.dest / "coralnet")
    # root_uri is what feature_key is relative to: the CoralNet root, the MERMAID parquet's folder
    cn = sources.filter(pl.col("site") == "coralnet")
    assert set(cn["root_uri"]) == {str(demo_sources.dest / "coralnet")}
    assert sources.filter(pl.col("site") == "mermaid")["root_uri"].to_list() == [
        str(demo_sources.dest / "mermaid")
    ]
    assert (
        cn["annotations_uri"]
        == str(demo_sources.dest / "coralnet") + "/s" + cn["source_id"] + "/annotations.csv"
    ).all()
    assert sources["duplicate_points"].sum() == demo_sources.duplicate_points


# --------------------------------------------------------------------------------------------------
# idempotence and partial re-ingest
# --------------------------------------------------------------------------------------------------


def test_second_identical_ingest_writes_no_new_version(
    tmp_path: Path, demo_sources: DemoSummary, ingest_demo
) -> None:
    """Bug pinned: reruns of an unchanged ingest adding Delta versions (not idempotent)."""
    lake_dir = tmp_path / "lake"
    first = ingest_demo(lake_dir, demo_sources.dest)
    lake = Lake.open(str(lake_dir))
    before = lake.versions()
    assert set(before) >= {
        "annotations",
        "sources",
        "features",
        "benthic_attributes",
        "growth_forms",
        "label_mappings",
    }
    assert first.versions_written
    second = ingest_demo(lake_dir, demo_sources.dest)
    assert lake.versions() == before
    assert second.versions_written == {}
    assert all(p.action == "unchanged" for p in second.plan)
    assert second.taxonomy_action == "unchanged"
    assert second.summary == first.summary


def test_changed_coralnet_source_replaces_only_its_partition(
    tmp_path: Path, demo_sources: DemoSummary, ingest_demo
) -> None:
    """Bug pinned: a changed source rewriting other sources, several commits, or duplicating rows."""
    src = copy_demo(demo_sources, tmp_path)
    lake_dir = tmp_path / "lake"
    ingest_demo(lake_dir, src)
    lake = Lake.open(str(lake_dir))
    before_versions = lake.versions()
    before_files = table_files(lake, "annotations")
    before_counts = dict(lake.sql("SELECT source_id, count(*) FROM annotations GROUP BY ALL").rows())
    before_stamps = dict(lake.sql("SELECT source_id, max(ingested_at) FROM annotations GROUP BY ALL").rows())
    before_sources = lake.sql("SELECT * FROM sources ORDER BY site, source_id")

    counts = csv_counts(src / "coralnet")
    target = sorted(counts, key=int)[len(counts) // 2]  # a source in the middle, not the first or last
    append_row(src / "coralnet" / f"s{target}" / "annotations.csv")

    report = ingest_demo(lake_dir, src)
    assert [(p.source_id, p.action) for p in report.changed] == [(target, "changed")]
    after_versions = lake.versions()
    bumped = {name for name in after_versions if after_versions[name] != before_versions.get(name)}
    assert bumped == {"annotations", "sources"}
    assert after_versions["annotations"] == before_versions["annotations"] + 1  # one commit
    assert after_versions["sources"] == before_versions["sources"] + 1

    after_counts = dict(lake.sql("SELECT source_id, count(*) FROM annotations GROUP BY ALL").rows())
    assert after_counts == {**before_counts, target: before_counts[target] + 1}
    after_stamps = dict(lake.sql("SELECT source_id, max(ingested_at) FROM annotations GROUP BY ALL").rows())
    assert after_stamps[target] > before_stamps[target]
    assert {k: v for k, v in after_stamps.items() if k != target} == {
        k: v for k, v in before_stamps.items() if k != target
    }
    # the other partitions' files are untouched; only the target's were replaced
    after_files = table_files(lake, "annotations")
    for key, files in before_files.items():
        if key == f"coralnet:{target}":
            assert after_files[key].isdisjoint(files)
        else:
            assert after_files[key] == files, key

    after_sources = lake.sql("SELECT * FROM sources ORDER BY site, source_id")
    unchanged_before = before_sources.filter(pl.col("source_id") != target)
    unchanged_after = after_sources.filter(pl.col("source_id") != target)
    assert unchanged_before.equals(unchanged_after)
    row = after_sources.filter(pl.col("source_id") == target).row(0, named=True)
    assert row["row_count"] == before_counts[target] + 1

    history = lake.history().filter(pl.col("table") == "annotations").sort("version")
    last = history.row(-1, named=True)
    assert last["sources"] == f"coralnet:{target}"
    assert last["rows_added"] == before_counts[target] + 1
    assert last["rows_removed"] == before_counts[target]
    # the duplicated last line is a duplicate point, kept and counted
    assert lake.sql("SELECT duplicate_points FROM sources WHERE source_id = ?", [target]).item() == (
        before_sources.filter(pl.col("source_id") == target)["duplicate_points"].item() + 1
    )


def test_new_mapping_needs_no_annotation_reingest(
    tmp_path: Path, demo_sources: DemoSummary, api_server: ApiServer, ingest_demo
) -> None:
    """Bug pinned: mapping baked into stored annotations (a new mapping would need a re-ingest)."""
    lake_dir = tmp_path / "lake"
    ingest_demo(lake_dir, demo_sources.dest, api=api_server.base_url)
    assert len(api_server.requests_to("classification/labelmappings/")) > 1, "pagination should happen"
    lake = Lake.open(str(lake_dir))
    before = lake.versions()
    mapped_before = scalar(lake, "SELECT count(*) FROM annotations_mapped")

    # 1) map a label id that was unmapped; 2) remap the most used mapped label to another BA
    unmapped_label, unmapped_rows = lake.sql(
        "SELECT label_id, count(*) AS n FROM unmapped_annotations GROUP BY ALL ORDER BY n DESC, label_id LIMIT 1"
    ).row(0)
    top_label = lake.sql(
        "SELECT label_id, count(*) AS n FROM annotations_mapped WHERE site = 'coralnet' "
        "GROUP BY ALL ORDER BY n DESC, label_id LIMIT 1"
    ).item(0, 0)
    old_ba = lake.sql(
        "SELECT benthic_attribute_id FROM label_mapping_resolved WHERE label_id = ?", [top_label]
    ).item()
    new_ba = lake.sql("SELECT id FROM benthic_attributes WHERE id <> ? ORDER BY id LIMIT 1", [old_ba]).item()
    mappings = api_server.label_mappings
    for item in mappings:
        if item["provider_id"] == top_label:
            item["benthic_attribute_id"] = new_ba
            item["benthic_attribute_name"] = None
    mappings.append(
        {
            "id": "0d9a4c1e-5b7f-4c2a-9e3d-1f2a3b4c5d6e",
            "benthic_attribute_id": new_ba,
            "benthic_attribute_name": None,
            "growth_form_id": None,
            "growth_form_name": None,
            "provider": "CoralNet",
            "provider_id": unmapped_label,
            "provider_label": "newly mapped",
        }
    )

    report = ingest_demo(lake_dir, demo_sources.dest, api=api_server.base_url)
    assert report.taxonomy_action == "changed"
    after = lake.versions()
    bumped = {name for name in after if after[name] != before.get(name)}
    assert "annotations" not in bumped and "features" not in bumped
    assert "label_mappings" in bumped
    assert bumped <= {"label_mappings", "benthic_attributes", "growth_forms", "sources"}
    assert scalar(lake, "SELECT count(*) FROM annotations_mapped") == mapped_before + unmapped_rows
    assert scalar(lake, "SELECT count(*) FROM unmapped_annotations WHERE label_id = ?", [unmapped_label]) == 0
    assert lake.sql(
        "SELECT DISTINCT benthic_attribute_id FROM annotations_mapped WHERE label_id = ?", [top_label]
    )["benthic_attribute_id"].to_list() == [new_ba]
    # pinned to the old label_mappings version, the old mapping is still what you get
    old = lake.sql(
        "SELECT DISTINCT benthic_attribute_id FROM annotations_mapped WHERE label_id = ?",
        [top_label],
        as_of=before["sources"],  # the lake version of the first ingest
    )
    assert old["benthic_attribute_id"].to_list() == [old_ba]


# --------------------------------------------------------------------------------------------------
# dry run
# --------------------------------------------------------------------------------------------------


def _cli_ingest(lake_dir: Path, src: Path, *extra: str):
    return CliRunner().invoke(
        app,
        [
            "ingest",
            "--lake",
            str(lake_dir),
            "--mermaid",
            str(src / MERMAID_PARQUET),
            "--coralnet",
            str(src / "coralnet"),
            "--api",
            str(src / "api"),
            *extra,
        ],
        env={"COLUMNS": "200"},
    )


def test_dry_run_prints_plan_with_counts_and_writes_nothing(
    tmp_path: Path, demo_sources: DemoSummary
) -> None:
    """Bug pinned: --dry-run writing tables, or printing a plan without row counts."""
    lake_dir = tmp_path / "lake"
    result = _cli_ingest(lake_dir, demo_sources.dest, "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "dry run" in out and "nothing was written" in out
    assert f"{demo_sources.mermaid_rows:,}" in out
    counts = csv_counts(demo_sources.dest / "coralnet")
    biggest = max(counts, key=counts.get)
    assert re.search(rf"\b{biggest}\b.*\bnew\b.*\b{counts[biggest]:,}\b", out), out
    assert f"{len(counts) + 1} source(s) to write" in out
    tables = lake_dir / "tables"
    assert not tables.exists() or not any(tables.iterdir())
    assert not Lake.open(str(lake_dir)).exists()


def test_dry_run_on_existing_lake_shows_only_changes(
    tmp_path: Path, demo_sources: DemoSummary, ingest_demo
) -> None:
    """Bug pinned: --dry-run on an existing lake writing a version, or planning unchanged sources."""
    src = copy_demo(demo_sources, tmp_path)
    lake_dir = tmp_path / "lake"
    ingest_demo(lake_dir, src)
    lake = Lake.open(str(lake_dir))
    before = lake.versions()
    counts = csv_counts(src / "coralnet")
    target = min(counts, key=int)
    append_row(src / "coralnet" / f"s{target}" / "annotations.csv")

    report = ingest_demo(lake_dir, src, dry_run=True)
    assert [(p.source_id, p.action, p.rows) for p in report.changed] == [
        (target, "changed", counts[target] + 1)
    ]
    result = _cli_ingest(lake_dir, src, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "1 source(s) to write" in result.output
    assert lake.versions() == before
    assert scalar(lake, "SELECT count(*) FROM annotations WHERE source_id = ?", [target]) == counts[target]


def test_cli_ingest_prints_progress_lines_and_the_summary(tmp_path: Path, demo_sources: DemoSummary) -> None:
    """Bug pinned: the CLI ingest without its summary table, or progress bars garbling non-terminal output."""
    result = _cli_ingest(tmp_path / "lake", demo_sources.dest)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for figure, value in (
        ("annotations", demo_sources.total_rows),
        ("duplicate points", demo_sources.duplicate_points),
        ("unmapped annotations", demo_sources.unmapped_label_rows),
        ("images missing features", demo_sources.feature_files_missing),
    ):
        assert re.search(rf"{figure}\s*│\s*{value:,}\s*│", out), (figure, out)
    assert "\r" not in result.stderr  # plain log lines, no redrawn bars, when not on a terminal
    assert "done in" in result.stderr
    again = _cli_ingest(tmp_path / "lake", demo_sources.dest)
    assert again.exit_code == 0, again.output
    assert "nothing changed: no new table versions" in again.stdout
