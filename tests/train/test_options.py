"""The seed API's option classes: defaults as documented, validation before any heavy work."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest
from mermaid_train.errors import MermaidTrainError, TrainConfigError
from mermaid_train.options import (
    MODEL_NAME_MAX,
    AnnotationsSelection,
    DatasetOptions,
    MLflowOptions,
    TrainingOptions,
    flat_params,
    parse_annotations_to_log,
    timestamped,
    validate_model_name,
)


def test_documented_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MERMAID_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MERMAID_MISSING_FEATURES_ALLOWED", raising=False)
    d = DatasetOptions()
    assert d.include_mermaid is True
    assert d.coralnet_sources_csv is None
    assert (d.label_rollup_spec_csv, d.included_labels_csv, d.excluded_labels_csv) == (None, None, None)
    assert d.drop_growthforms is False
    assert d.ref_val_ratios == (0.1, 0.1)
    assert d.annotation_limit is None
    assert d.missing_allowed_pct() == 5.0
    t = TrainingOptions()
    assert (t.epochs, t.seed, t.split, t.clf_type, t.trainer, t.preset) == (None, 0, "images", "MLP", "packed",
                                                                             "pyspacer")
    r = t.recipe()  # the pyspacer preset: pyspacer's MiniBatchTrainer recipe
    assert (r.epochs, r.hidden_layer_sizes, r.learning_rate, r.step_batch(), r.alpha) == (10, None, None, 200, 1e-4)
    assert (r.early_stopping_patience, r.class_weighting, r.logit_adjustment, r.subsample) == (None, None, None, None)
    assert r.network(50_000) == ((200, 100), 1e-4) and r.network(49_999) == ((100,), 1e-3)
    m = MLflowOptions()
    assert m.annotations_to_log is None
    assert m.resolved_experiment() == "mermaid-classifier"
    d.validate()
    t.validate()
    m.validate()


def test_settings_drive_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERMAID_EXPERIMENT_NAME", "reef-exp")
    monkeypatch.setenv("MERMAID_MODEL_NAME", "reef-model")
    monkeypatch.setenv("MERMAID_MISSING_FEATURES_ALLOWED", "2.5")
    monkeypatch.setenv("MERMAID_LAKE_URI", "/somewhere/lake")
    assert MLflowOptions().resolved_experiment() == "reef-exp"
    assert MLflowOptions().resolved_model_name() == "reef-model"
    assert MLflowOptions(experiment_name="mine").resolved_experiment() == "mine"
    assert DatasetOptions().missing_allowed_pct() == 2.5
    assert DatasetOptions(missing_features_allowed=0).missing_allowed_pct() == 0.0
    assert DatasetOptions().lake_uri() == "/somewhere/lake"
    assert DatasetOptions(lake="s3://b/lake").lake_uri() == "s3://b/lake"


def test_seed_call_is_valid() -> None:
    DatasetOptions(
        include_mermaid=False, coralnet_sources_csv="sources/sample.csv", drop_growthforms=True,
        label_rollup_spec_csv="labels/rollups.csv", included_labels_csv="labels/inclusions.csv",
        ref_val_ratios=(0.075, 0.125), annotation_limit=5000,
    ).validate()
    TrainingOptions(epochs=5).validate()
    MLflowOptions(experiment_name="My Experiment 1", model_name="my-model", annotations_to_log="all").validate()


@pytest.mark.parametrize("ratios", [(0.5, 0.5), (0.6, 0.6), (0.9, 0.2), (-0.1, 0.2), (0.1,), "0.1,0.1",
                                    (float("nan"), 0.1)])
def test_ratios_must_sum_below_one(ratios) -> None:
    with pytest.raises(TrainConfigError) as info:
        DatasetOptions(ref_val_ratios=ratios).validate()
    assert "ratio" in str(info.value)
    assert "Fix:" in str(info.value)


def test_include_and_exclude_together_is_an_error() -> None:
    with pytest.raises(TrainConfigError, match="both an include CSV and an exclude CSV"):
        DatasetOptions(included_labels_csv="a.csv", excluded_labels_csv="b.csv").validate()


@pytest.mark.parametrize(
    "kwargs", [{"epochs": 0}, {"epochs": 2.5}, {"epochs": True}, {"seed": -1}, {"split": "sources"},
               {"clf_type": "SVM"}, {"trainer": "fast"}, {"batch_size": 0}],
)
def test_training_options_validation(kwargs) -> None:
    with pytest.raises(TrainConfigError):
        TrainingOptions(**kwargs).validate()


def test_previous_model_as_string_becomes_tuple() -> None:
    t = TrainingOptions(previous_model_locs="/tmp/model.pkl")
    t.validate()
    assert t.previous_model_locs == ("/tmp/model.pkl",)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, None),
        ("all", AnnotationsSelection("all")),
        ("s123", AnnotationsSelection("source", "123")),
        ("s007", AnnotationsSelection("source", "7")),
        ("i456", AnnotationsSelection("image", "456")),
        ("i3f2a9c1e-0000-4000-8000-000000000001", AnnotationsSelection("image", "3f2a9c1e-0000-4000-8000-000000000001")),
    ],
)
def test_annotations_to_log_grammar(spec, expected) -> None:
    assert parse_annotations_to_log(spec) == expected


@pytest.mark.parametrize("spec", ["", "ALL", "some", "s", "sx1", "s12a", "i", "x123", "s-1", "i../etc", 123, "all; rm"])
def test_annotations_to_log_outside_the_grammar(spec) -> None:
    with pytest.raises(TrainConfigError) as info:
        parse_annotations_to_log(spec)
    assert "annotations_to_log" in str(info.value)
    with pytest.raises(MermaidTrainError):
        MLflowOptions(annotations_to_log=spec).validate()


def test_annotation_selection_file_names() -> None:
    assert parse_annotations_to_log("all").file_name == "annotations_all.csv"
    assert parse_annotations_to_log("s12").file_name == "annotations_source_12.csv"
    assert parse_annotations_to_log("i9").file_name == "annotations_image_9.csv"


@pytest.mark.parametrize("name", ["my-model", "CustomModelNameHere", "reef model v2", "a.b_c-d", "x" * 240])
def test_valid_model_names(name) -> None:
    assert validate_model_name(name) == name
    assert len(timestamped(name)) <= MODEL_NAME_MAX


@pytest.mark.parametrize(
    "name", ["", "   ", " lead", "a/b", "team:model", "tab\there", "new\nline", "bell\x07", "zero\u200bwidth",
             ".hidden", "..", "x" * 241, "q?x", "p%20"],
)
def test_invalid_model_names(name) -> None:
    with pytest.raises(TrainConfigError) as info:
        validate_model_name(name)
    assert "Fix:" in str(info.value)
    with pytest.raises(TrainConfigError):
        MLflowOptions(model_name=name).validate()


def test_timestamp_is_appended() -> None:
    assert timestamped("my-model", datetime(2025, 1, 31, 12, 0, 5)) == "my-model-20250131-120005"


def test_flat_params_cover_every_option() -> None:
    """Bug pinned: a training option missing from the logged params (every option is part of the run)."""
    params = flat_params(DatasetOptions(ref_val_ratios=(0.075, 0.125)), TrainingOptions(epochs=5).recipe(),
                         MLflowOptions(model_name="m"))
    for name in (f.name for f in dataclasses.fields(TrainingOptions)):
        assert f"training.{name}" in params, name
    assert params["dataset.ref_val_ratios"] == "0.075,0.125"
    assert params["dataset.include_mermaid"] is True
    assert params["dataset.coralnet_sources_csv"] == ""
    assert params["training.epochs"] == 5
    assert params["training.trainer"] == "packed"
    assert params["mlflow.model_name"] == "m"
    assert all(isinstance(k, str) and k.count(".") == 1 for k in params)


def test_upstream_preset_and_overrides() -> None:
    """Bug pinned: a preset value lost, or an explicit option not winning over the preset."""
    up = TrainingOptions(preset="upstream").recipe()
    assert (up.hidden_layer_sizes, up.learning_rate, up.epochs, up.step_batch()) == ((500, 300, 100), 1e-4, 40, 512)
    assert (up.class_weighting, up.weighting_beta, up.early_stopping_patience, up.early_stopping_metric) == (
        "effective_number", 0.9999, 3, "ref_balanced_accuracy")
    mine = TrainingOptions(preset="upstream", epochs=20, hidden_layer_sizes="256,128", class_weighting="none",
                           early_stopping_patience=0, early_stopping_metric="ref_loss",
                           logit_adjustment="auto", subsample="balanced:1000:5", pack_dtype="float16").recipe()
    assert (mine.epochs, mine.hidden_layer_sizes, mine.class_weighting, mine.early_stopping_patience) == (
        20, (256, 128), None, None)
    assert mine.learning_rate == 1e-4 and mine.early_stopping_metric == "ref_loss"
    assert mine.logit_adjustment == "auto" and str(mine.subsample) == "balanced:1000:5"
    assert mine.pack_dtype == "float16"
    assert TrainingOptions(logit_adjustment="1.5").recipe().logit_adjustment == 1.5


def test_recipe_id_is_the_runs_identity() -> None:
    """Bug pinned: two different recipes sharing an ID, or the same recipe getting two."""
    base = TrainingOptions(preset="upstream").recipe()
    assert base.recipe_id("snap-a") == TrainingOptions(preset="upstream").recipe().recipe_id("snap-a")
    assert base.recipe_id("snap-a").startswith("recipe-") and len(base.recipe_id("snap-a")) == 23
    others = {base.recipe_id("snap-b"), TrainingOptions(preset="upstream", seed=1).recipe().recipe_id("snap-a"),
              TrainingOptions(preset="upstream", weight_ratio_cap=10).recipe().recipe_id("snap-a"),
              TrainingOptions(preset="upstream", subsample="stratified:10").recipe().recipe_id("snap-a")}
    assert len(others) == 4 and base.recipe_id("snap-a") not in others


@pytest.mark.parametrize(("kwargs", "text"), [
    ({"preset": "torch"}, "preset"),
    ({"hidden_layer_sizes": (0, 10)}, "hidden_layer_sizes"),
    ({"hidden_layer_sizes": "500,x"}, "hidden_layer_sizes"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"),
    ({"early_stopping_patience": -1}, "early_stopping_patience"),
    ({"early_stopping_metric": "val_loss"}, "early_stopping_metric"),
    ({"class_weighting": "inverse"}, "class_weighting"),
    ({"weighting_beta": 1.0}, "weighting_beta"),
    ({"weight_ratio_cap": 0.5}, "weight_ratio_cap"),
    ({"logit_adjustment": "yes"}, "logit_adjustment"),
    ({"logit_adjustment": -1}, "logit_adjustment"),
    ({"logit_adjustment_max_accuracy_loss": 2}, "logit_adjustment_max_accuracy_loss"),
    ({"subsample": "half"}, "subsample"),
    ({"pack_dtype": "int8"}, "pack_dtype"),
    ({"blas_threads": 0}, "blas_threads"),
    ({"trainer": "minibatch", "preset": "upstream"}, "stock trainer"),
    ({"trainer": "minibatch", "class_weighting": "effective_number"}, "class_weighting"),
])
def test_bad_recipe_options(kwargs, text) -> None:
    with pytest.raises(TrainConfigError) as info:
        TrainingOptions(**kwargs).validate()
    assert text in str(info.value) and "Fix:" in str(info.value)
