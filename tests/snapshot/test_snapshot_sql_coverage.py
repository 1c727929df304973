"""The snapshot ID covers every SQL text its rows come from: collected by the loader, not a hand-kept list."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mermaid_data import sqlfiles
from mermaid_data.errors import SnapshotError
from mermaid_data.lake import Lake
from mermaid_data.snapshot import SnapshotSpec
from mermaid_data.snapshot import build as build_mod
from mermaid_data.snapshot.build import build_recipe

from tests.snapshot.conftest import Golden
from tests.snapshot.golden import CASES
from tests.snapshot.test_snapshot_identity import rich_spec

SOURCES_ALL = CASES / "step_map_only" / "sources.csv"


def sql_files(*folders: str) -> list[str]:
    root = sqlfiles.sql_dir()
    return sorted(str(p.relative_to(root).with_suffix("")) for folder in folders for p in (root / folder).glob("*.sql"))


def edited_copy(tmp_path: Path, name: str, edit=lambda text: text + "\n-- edited\n") -> Path:
    """A copy of sql/ with ``name`` edited (each copy is a new folder: the loader caches per folder)."""
    copy = tmp_path / f"sql-{name.replace('/', '-')}"
    shutil.copytree(sqlfiles.sql_dir(), copy)
    path = copy / f"{name}.sql"
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    return copy


def test_editing_any_snapshot_or_view_sql_file_changes_the_id(golden_lake: Lake, tmp_path: Path) -> None:
    """Bug pinned: step 1 joins sql/views/label_mapping_resolved.sql, which was not among the SQL files hashed
    into the recipe, so editing that view kept the snapshot ID. Every file the build's statements are composed
    of is hashed now, whatever it is: each snapshot and view file is edited in turn and the ID must change."""
    spec = rich_spec()
    base = build_recipe(golden_lake, spec)
    composed = set(base.sql_sha256)
    assert composed == set(sql_files("snapshot", "views")), composed ^ set(sql_files("snapshot", "views"))
    assert "views/label_mapping_resolved" in composed and "views/macros" in composed
    assert not any(name.startswith("ingest/") for name in composed)  # ingest SQL is pinned by the table versions
    for name in sorted(composed):
        with sqlfiles.use_sql_dir(edited_copy(tmp_path, name)):
            edited = build_recipe(golden_lake, spec)
        assert edited.snapshot_id != base.snapshot_id, f"editing sql/{name}.sql kept the snapshot ID"
        assert {n for n in base.sql_sha256 if base.sql_sha256[n] != edited.sql_sha256[n]} == {name}
    assert build_recipe(golden_lake, spec).snapshot_id == base.snapshot_id  # the real folder again


def test_a_changed_mapping_rule_is_a_new_snapshot(golden: Golden, tmp_path: Path) -> None:
    """Bug pinned: the issue's case itself. Label 107 is listed twice (B3/G1 and B2/G2); the rule picks B2/G2.
    A view that picks the other pair gave the same ID (snap-9db4…) with a different content_sha256."""
    spec = SnapshotSpec(coralnet_sources_csv=SOURCES_ALL, missing_features_allowed=50)
    before = golden.lake.create_snapshot(spec)
    flipped = edited_copy(tmp_path, "views/label_mapping_resolved",
                          lambda t: t.replace("ORDER BY benthic_attribute_id, growth_form_id, mapping_id",
                                              "ORDER BY benthic_attribute_id DESC, growth_form_id, mapping_id"))
    with sqlfiles.use_sql_dir(flipped):
        after = golden.lake.create_snapshot(spec)
    assert after.created and after.snapshot_id != before.snapshot_id
    assert after.manifest["content_sha256"] != before.manifest["content_sha256"]
    assert after.manifest["row_count"] == before.manifest["row_count"]


def test_a_build_that_reads_sql_the_recipe_does_not_cover_publishes_nothing(
    golden: Golden, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug pinned: a statement added to the build without going through the composition would silently
    escape the ID. The build records what it loads and refuses to publish if the recipe misses any of it."""
    real = build_mod.current_sql_hashes

    def missing_one() -> dict[str, str]:
        hashes = dict(real())
        del hashes["views/label_mapping_resolved"]
        return hashes

    monkeypatch.setattr(build_mod, "current_sql_hashes", missing_one)
    with pytest.raises(SnapshotError, match="views/label_mapping_resolved"):
        golden.lake.create_snapshot(SnapshotSpec(coralnet_sources_csv=SOURCES_ALL, missing_features_allowed=50))
    root = Path(golden.lake.uri.key) / "snapshots"
    assert not root.exists() or not [p.name for p in root.iterdir()]
    assert golden.lake.delta("snapshots") is None
