"""Snapshot identity: the ID is the recipe (input versions, spec content, SQL, options, semantics), nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from mermaid_data.lake import Lake
from mermaid_data.snapshot import SnapshotSpec
from mermaid_data.snapshot import build as build_mod
from mermaid_data.snapshot.build import build_recipe
from mermaid_data.snapshot.recipe import ID_PREFIX, Recipe

from tests.snapshot.conftest import Golden
from tests.snapshot.golden import (
    B1,
    B2,
    B3,
    B5,
    B6,
    CASES,
    G1,
    G2,
    ingest_golden,
    load_case,
    write_coralnet_source,
    write_golden_sources,
)

ROLLUPS = CASES / "step_rollup" / "rollups.csv"
SOURCES_ALL = CASES / "step_map_only" / "sources.csv"


def rich_spec(**overrides) -> SnapshotSpec:
    base = {"coralnet_sources_csv": SOURCES_ALL, "label_rollup_spec_csv": ROLLUPS,
            "included_labels_csv": CASES / "step_include" / "include.csv", "missing_features_allowed": 50}
    base.update(overrides)
    return SnapshotSpec(**base)


def tree_state(root: Path) -> dict[str, int]:
    """Every file under ``root`` with its mtime (ns): a write anywhere changes it."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def snapshots_version(lake: Lake) -> int | None:
    table = lake.delta("snapshots")
    return None if table is None else table.version()


def dry_id(lake: Lake, spec: SnapshotSpec) -> str:
    return lake.create_snapshot(spec, dry_run=True).snapshot_id


def test_id_shape_and_prefix() -> None:
    recipe = Recipe({"annotations": 1}, {}, {"x": 1}, {"a": "b"})
    sid = recipe.snapshot_id
    assert sid.startswith(ID_PREFIX) and len(sid) == len(ID_PREFIX) + 16
    assert all(c in "0123456789abcdef" for c in sid[len(ID_PREFIX):])
    assert sid == Recipe({"annotations": 1}, {}, {"x": 1}, {"a": "b"}).snapshot_id


def test_same_recipe_returns_the_existing_snapshot_and_writes_nothing(golden_lake: Lake) -> None:
    spec = rich_spec(name="first", message="the first one")
    first = golden_lake.create_snapshot(spec)
    root = Path(golden_lake.uri.key)
    state, version = tree_state(root), snapshots_version(golden_lake)
    again = golden_lake.create_snapshot(rich_spec(name="another name", message="another message"))
    assert again.snapshot_id == first.snapshot_id
    assert not again.created
    assert again.manifest["content_sha256"] == first.manifest["content_sha256"]
    assert tree_state(root) == state, "create of an existing recipe wrote something"
    assert snapshots_version(golden_lake) == version
    # the manifest is the published one, untouched: a published snapshot is never overwritten
    assert again.manifest == first.manifest


def test_formatting_of_spec_csvs_does_not_change_the_id(golden_lake: Lake, tmp_path: Path) -> None:
    plain_roll = tmp_path / "r1.csv"
    plain_roll.write_text(f"from_ba_id,from_gf_id,to_ba_id,to_gf_id\n{B2},{G1},{B1},\n{B3},,{B1},\n{B6},,{B5},\n")
    messy_roll = tmp_path / "r2.csv"
    messy_roll.write_bytes(b"\xef\xbb\xbf" + (
        "to_ba_name,to_ba_id,from_gf_id,from_ba_id,to_gf_id,from_ba_name\r\n\r\n"
        f"Turf, {B5} ,none,{B6.upper()},,Sand\r\n"
        f"Hard coral,{B1},,{B3},NULL,Porites\r\n"
        f"Hard coral,{B1},{G1},{B2},,Acropora\r\n\r\n"
    ).encode())
    plain_inc = tmp_path / "i1.csv"
    plain_inc.write_text(f"ba_id,gf_id\n{B1},\n{B3},{G2}\n")
    messy_inc = tmp_path / "i2.csv"
    messy_inc.write_bytes(f"gf_id,ba_name,ba_id\r\n{G2.upper()},Porites,{B3}\r\n , Hard coral , {B1} \r\n".encode())
    a = SnapshotSpec(label_rollup_spec_csv=plain_roll, included_labels_csv=plain_inc)
    b = SnapshotSpec(label_rollup_spec_csv=messy_roll, included_labels_csv=messy_inc)
    assert dry_id(golden_lake, a) == dry_id(golden_lake, b)


def test_name_message_and_file_location_are_not_part_of_the_id(golden_lake: Lake, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere.csv"
    moved.write_bytes(ROLLUPS.read_bytes())
    a = dry_id(golden_lake, rich_spec())
    assert dry_id(golden_lake, rich_spec(name="x", message="y")) == a
    assert dry_id(golden_lake, rich_spec(label_rollup_spec_csv=moved)) == a


def test_every_option_and_spec_row_is_part_of_the_id(golden_lake: Lake, tmp_path: Path) -> None:
    base = dry_id(golden_lake, rich_spec())
    one_more_source = tmp_path / "sources.csv"
    one_more_source.write_text("id\n11\n12\n")
    one_less_rule = tmp_path / "rollups.csv"
    one_less_rule.write_text(f"from_ba_id,from_gf_id,to_ba_id,to_gf_id\n{B2},{G1},{B1},\n")
    gf_changed = tmp_path / "include.csv"
    gf_changed.write_text(f"ba_id,gf_id\n{B1},\n{B3},{G1}\n{B5},\n{B2},\n")  # B3/G2 -> B3/G1
    variants = {
        "include_mermaid": rich_spec(include_mermaid=False),
        "drop_growthforms": rich_spec(drop_growthforms=True),
        "annotation_limit": rich_spec(annotation_limit=7),
        "missing_features_allowed": rich_spec(missing_features_allowed=51),
        "sources": rich_spec(coralnet_sources_csv=one_more_source),
        "rollups": rich_spec(label_rollup_spec_csv=one_less_rule),
        "include row": rich_spec(included_labels_csv=gf_changed),
        "include -> exclude (same rows)": rich_spec(included_labels_csv=None,
                                                     excluded_labels_csv=CASES / "step_include" / "include.csv"),
        "no rollups": rich_spec(label_rollup_spec_csv=None),
    }
    ids = {what: dry_id(golden_lake, spec) for what, spec in variants.items()}
    assert base not in ids.values()
    assert len(set(ids.values())) == len(ids), ids


def test_default_missing_features_allowed_is_the_setting(golden_lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipe holds the effective percentage: default 5 == explicit 5; the setting changes it."""
    default = dry_id(golden_lake, SnapshotSpec())
    assert dry_id(golden_lake, SnapshotSpec(missing_features_allowed=5)) == default
    monkeypatch.setenv("MERMAID_MISSING_FEATURES_ALLOWED", "20")
    assert dry_id(golden_lake, SnapshotSpec()) == dry_id(golden_lake, SnapshotSpec(missing_features_allowed=20))
    assert dry_id(golden_lake, SnapshotSpec()) != default


def test_sql_text_and_semantics_constant_are_part_of_the_id(golden_lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = build_recipe(golden_lake, rich_spec())
    bumped = Recipe(recipe.input_versions, recipe.specs, recipe.options, recipe.sql_sha256, semantics=recipe.semantics + 1)
    assert bumped.snapshot_id != recipe.snapshot_id
    real = build_mod.current_sql_hashes()
    assert set(real) >= {f"snapshot/0{i}_{s}" for i, s in enumerate(
        ("map", "sources", "drop_growthforms", "rollup", "labels", "features", "limit"), start=1)}
    changed = dict(real, **{"snapshot/04_rollup": "0" * 64})
    monkeypatch.setattr(build_mod, "current_sql_hashes", lambda: changed)
    assert build_recipe(golden_lake, rich_spec()).snapshot_id != recipe.snapshot_id
    # the package version is not part of it
    assert "version" not in str(recipe.canonical()["options"])


def test_a_new_ingest_gives_the_same_spec_a_new_id(golden: Golden) -> None:
    spec = rich_spec()
    before = golden.lake.create_snapshot(spec)
    rows = list(golden.reingest().plan)  # nothing changed: no new versions, same ID
    assert all(p.action == "unchanged" for p in rows)
    assert dry_id(golden.lake, spec) == before.snapshot_id
    write_coralnet_source(golden.src, "13", [(1301, 5, 5, 101), (1301, 6, 6, 102), (1301, 7, 7, 103)])
    golden.reingest()
    after = golden.lake.create_snapshot(spec)
    assert after.snapshot_id != before.snapshot_id
    va, vb = before.manifest["recipe"]["input_versions"], after.manifest["recipe"]["input_versions"]
    assert vb["annotations"] > va["annotations"]
    assert after.manifest["row_count"] == before.manifest["row_count"]  # 103 = B4 is not in the include list
    assert after.manifest["stage_counts"][0]["remaining"] == 22


def test_identical_sources_in_two_lakes_give_byte_identical_snapshots(tmp_path: Path) -> None:
    lakes = []
    for name in ("one", "two"):
        src = write_golden_sources(tmp_path / name / "src")
        ingest_golden(tmp_path / name / "lake", src)
        lakes.append(Lake.open(str(tmp_path / name / "lake")))
    for case in ("step_rollup", "step_limit_9"):
        _, spec = load_case(case)
        a, b = (lake.create_snapshot(spec) for lake in lakes)
        assert a.created and b.created
        assert a.snapshot_id == b.snapshot_id
        assert a.manifest["content_sha256"] == b.manifest["content_sha256"]
        assert a.manifest["files"] == b.manifest["files"]
        da, db = (Path(lake.uri.key) / "snapshots" / a.snapshot_id for lake in lakes)
        for name in a.manifest["files"]:
            assert (da / name).read_bytes() == (db / name).read_bytes(), name
        assert a.manifest["recipe"]["input_versions"] == b.manifest["recipe"]["input_versions"]
