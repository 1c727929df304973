"""Lineage: the snapshot's recipe as params, upstream's default model name, registry naming."""

from __future__ import annotations

from datetime import datetime

import pytest
from mermaid_train.lineage import (
    default_model_name,
    model_name_from_manifest,
    model_name_from_options,
    recipe_params,
)
from mermaid_train.options import DatasetOptions, MLflowOptions, timestamped

#: A manifest as `snapshot create` writes it (trimmed to what lineage reads): sources, rollups, include.
MANIFEST = {
    "snapshot_id": "snap-0123456789abcdef",
    "name": "reef-2025",
    "created_at": "2025-01-31T12:00:05+00:00",
    "recipe_sha256": "0123456789abcdef" + "0" * 48,
    "row_count": 10,
    "content_sha256": "ad2ba987cec6a45322ddb24fab2f6155791db22c38219f2e3737c081709b06ac",
    "recipe": {
        "input_versions": {"annotations": 4, "benthic_attributes": 0, "features": 1, "growth_forms": 0,
                           "label_mappings": 2},
        "options": {"annotation_limit": 5000, "drop_growthforms": True, "include_mermaid": False,
                    "label_mode": "include", "missing_features_allowed": 2.5},
        "specs": {},
        "spec_tables": {
            "include": {"kind": "include", "path": "labels/coral_inclusions.csv", "sha256": "i" * 64,
                        "columns": ["ba_id", "gf_id"], "rows": [["a", ""], ["b", ""]]},
            "rollups": {"kind": "rollups", "path": "/data/labels/rollups-v2.csv", "sha256": "r" * 64,
                        "columns": ["from_ba_id", "from_gf_id", "to_ba_id", "to_gf_id"], "rows": [["x", "", "a", ""]]},
            "sources": {"kind": "sources", "path": "sources/sample.csv", "sha256": "s" * 64, "columns": ["id"],
                        "rows": [["3064"], ["23"], ["1579"]]},
        },
    },
}


def test_recipe_params_are_the_manifests() -> None:
    """Bug pinned: a run trained from a snapshot ID logged dataset.coralnet_sources_csv='' (and blank rollups
    and growth forms) although the snapshot held CoralNet sources: the params come from the manifest."""
    params = recipe_params(MANIFEST)
    assert params["dataset.include_mermaid"] is False
    assert params["dataset.drop_growthforms"] is True
    assert params["dataset.annotation_limit"] == 5000
    assert params["dataset.coralnet_sources_csv"] == "sources/sample.csv"
    assert params["dataset.label_rollup_spec_csv"] == "/data/labels/rollups-v2.csv"
    assert params["dataset.included_labels_csv"] == "labels/coral_inclusions.csv"
    assert params["dataset.excluded_labels_csv"] == ""
    assert params["snapshot.sources.ids"] == "23,1579,3064"  # numeric order
    assert (params["snapshot.sources.rows"], params["snapshot.sources.sha256"]) == (3, "s" * 64)
    assert (params["snapshot.rollups.rows"], params["snapshot.rollups.sha256"]) == (1, "r" * 64)
    assert (params["snapshot.include.rows"], params["snapshot.include.path"]) == (2, "labels/coral_inclusions.csv")
    assert "snapshot.exclude.sha256" not in params
    assert params["snapshot.label_mode"] == "include" and params["snapshot.missing_features_allowed"] == 2.5
    assert {k: v for k, v in params.items() if k.startswith("snapshot.input_versions.")} == {
        "snapshot.input_versions.annotations": 4, "snapshot.input_versions.benthic_attributes": 0,
        "snapshot.input_versions.features": 1, "snapshot.input_versions.growth_forms": 0,
        "snapshot.input_versions.label_mappings": 2}
    assert params["snapshot.digest"] == "ad2ba987cec6a45322ddb24fab2f6155"
    assert (params["snapshot.name"], params["snapshot.recipe_sha256"]) == ("reef-2025", MANIFEST["recipe_sha256"])


def test_recipe_params_of_a_plain_snapshot() -> None:
    plain = {"recipe": {"options": {"include_mermaid": True, "drop_growthforms": False, "annotation_limit": None,
                                    "label_mode": "none"}, "spec_tables": {}, "input_versions": {}}}
    params = recipe_params(plain)
    assert params["dataset.coralnet_sources_csv"] == "" and params["dataset.label_rollup_spec_csv"] == ""
    assert params["dataset.annotation_limit"] == "" and params["dataset.include_mermaid"] is True
    assert not any(k.startswith("snapshot.sources") for k in params)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "AllLabels"),
        ({"sources": "sources/sample.csv"}, "AllLabels-sample"),
        ({"included": "labels/inclusions.csv", "rollups": "labels/rollups.csv", "sources": "sources/sample.csv",
          "annotation_limit": 5000}, "Includeinclusions-Rolluprollups-sample-AnnoLimit50"),  # cut at 50, as upstream
        ({"excluded": "labels/exclusions.csv"}, "Excludeexclusions"),
        ({"rollups": "labels/coral_rollups.csv"}, "AllLabels-Rollupcoralrollups"),  # '_' dropped: alphanumerics
        ({"included": "a.csv", "excluded": "b.csv"}, "Includea"),  # include wins (they never come together)
        ({"annotation_limit": 2000}, "AllLabels-AnnoLimit2000"),
        ({"sources": "s3://bucket/spec/CoralNet Sources (v2).csv"}, "AllLabels-CoralNetSourcesv2"),
    ],
)
def test_default_model_name_is_upstreams(kwargs, expected: str) -> None:
    assert default_model_name(**kwargs) == expected


def test_default_model_name_is_at_most_50_characters() -> None:
    name = default_model_name(included="labels/a_very_long_inclusion_list_name.csv",
                              rollups="labels/rollups_to_depth_two.csv", sources="sources/all.csv", annotation_limit=99)
    assert name == "Includeaverylonginclusionlistname-Rolluprollupstod"  # 50 characters: the rest is cut


def test_the_same_recipe_gives_the_same_name_from_options_and_from_the_manifest() -> None:
    options = DatasetOptions(coralnet_sources_csv="sources/sample.csv", label_rollup_spec_csv="/data/labels/rollups-v2.csv",
                             included_labels_csv="labels/coral_inclusions.csv", annotation_limit=5000)
    assert model_name_from_options(options) == model_name_from_manifest(MANIFEST) == \
        "Includecoralinclusions-Rolluprollupsv2-sample-Anno"


def test_model_name_option_then_setting_then_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MERMAID_MODEL_NAME", raising=False)
    assert MLflowOptions().resolved_model_name() is None
    assert MLflowOptions().resolved_model_name("AllLabels") == "AllLabels"
    monkeypatch.setenv("MERMAID_MODEL_NAME", "reef")
    assert MLflowOptions().resolved_model_name("AllLabels") == "reef"
    assert MLflowOptions(model_name="mine").resolved_model_name("AllLabels") == "mine"


def test_the_run_name_carries_the_date_time() -> None:
    assert timestamped("reef", datetime(2025, 1, 31, 12, 0, 5)) == "reef-20250131-120005"
