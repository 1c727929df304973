"""PackedTrainer through spacer.tasks.train_classifier: pyspacer-loadable model, recipes, parity with stock."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from mermaid_train.errors import TrainConfigError, TrainDataError
from mermaid_train.model import balance
from mermaid_train.model.spacer import PackedLabels, PackedTrainer, packed_task_labels, train
from mermaid_train.options import TrainingOptions
from mermaid_train.recipe import Recipe
from mermaid_train.split import Subsample, subsample_train
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer
from spacer.data_classes import DataLocation, ImageLabels, ValResults
from spacer.messages import ClassifyFeaturesMsg, TrainingTaskLabels
from spacer.storage import load_classifier
from spacer.task_utils import preprocess_labels
from spacer.tasks import classify_features
from spacer.train_classifier import ClassifierTrainer

ONE_THREAD = Recipe(blas_threads=1)  # bit-for-bit repeatable (OpenBLAS's last bits depend on the thread count)


@pytest.fixture(scope="module")
def packed(train_packed):
    return train_packed[1]


@pytest.fixture(scope="module")
def ours(packed, tmp_path_factory):
    """Our trainer, the pyspacer preset (10 epochs, seed 0); shared: read-only."""
    return train(packed, ONE_THREAD, out_dir=tmp_path_factory.mktemp("ours"))


def test_trainer_serializes_and_deserializes() -> None:
    """Bug pinned: pyspacer stores trainers in messages; ours must rebuild from its serialized form."""
    recipe = TrainingOptions(preset="upstream", seed=3, subsample="balanced:500:2").recipe()
    trainer = PackedTrainer(pack_dir="/w/packed/snap-x/k", recipe=json.loads(json.dumps(
        PackedTrainer(recipe=None).serialize().get("recipe", {}))))
    assert trainer.recipe == Recipe()
    from mermaid_train.model.spacer import recipe_to_json

    trainer = PackedTrainer(pack_dir="/w/packed/snap-x/k", recipe=recipe_to_json(recipe))
    data = json.loads(json.dumps(trainer.serialize()))
    assert data["class_path"] == "mermaid_train.model.spacer.PackedTrainer"
    back = ClassifierTrainer.deserialize(data)
    assert isinstance(back, PackedTrainer) and back == trainer and back.recipe == recipe
    assert back.recipe.hidden_layer_sizes == (500, 300, 100) and back.recipe.subsample == Subsample("balanced", 500, 2)
    assert PackedTrainer().serialize() == {"class_path": "mermaid_train.model.spacer.PackedTrainer"}


def test_packed_labels_satisfy_pyspacer_preprocessing(packed) -> None:
    """Bug pinned: the light labels object missing something preprocess_labels / train_classifier use."""
    labels = packed_task_labels(packed)
    out = preprocess_labels(labels)
    for name in ("train", "ref", "val"):
        idx = packed.indices(name)
        assert isinstance(out[name], PackedLabels)
        assert out[name].label_count == len(idx)
        assert len(out[name]) == packed.rows[idx]["feature_uri"].n_unique()
        assert not out[name].has_remote_data
    assert out.ref.classes_set == set(packed.classes)
    keep = set(packed.classes[:2])
    sub = labels.train.filter_classes(keep)
    assert sub.classes_set == keep
    assert sub.label_count == sum(labels.train.label_count_per_class[c] for c in keep)
    x, y = next(sub.load_data_in_batches(batch_size=7, random_seed=1))
    assert x.shape == (7, packed.dim) and x.dtype == np.float32 and set(y) <= keep


def test_model_loads_with_pyspacer_and_predicts(ours, packed) -> None:
    """Bug pinned: a stored model pyspacer cannot load, or whose predictions disagree with the val results."""
    assert ours.trainer == "packed" and ours.classes == packed.classes
    clf = load_classifier(DataLocation("filesystem", str(ours.model_path)))
    assert type(clf.estimator._optimizer) is AdamOptimizer  # no mermaid_train class inside the pickle
    assert clf.estimator.hidden_layer_sizes == (100,)  # pyspacer's rule for a small train set
    assert b"mermaid_train" not in ours.model_path.read_bytes()
    val_idx = packed.indices("val")
    assert len(ours.val_gt) == len(ours.val_est) == len(val_idx) == ours.val_rows.height
    predicted = clf.predict(np.asarray(packed.x[val_idx], dtype=np.float64))
    assert (np.asarray(ours.classes)[ours.val_est] == predicted).all()
    assert (np.asarray(ours.classes)[ours.val_gt] == ours.val_rows["class_key"].to_numpy()).all()
    assert ours.accuracy == pytest.approx(float(np.mean(ours.val_gt == ours.val_est)))
    assert ours.val_scores.shape == (len(val_idx), len(ours.classes))
    np.testing.assert_allclose(ours.val_scores.sum(axis=1), 1.0, rtol=1e-6)
    assert len(ours.ref_accs) == len(ours.epoch_seconds) == 10
    valres = ValResults.load(DataLocation("filesystem", str(ours.valresult_path)))
    assert valres.classes == ours.classes and valres.est == ours.val_est.tolist()
    # pyspacer's own classify task on a real feature file
    uri = ours.val_rows["feature_uri"][0]
    result = classify_features(ClassifyFeaturesMsg("t", DataLocation("filesystem", uri),
                                                   DataLocation("filesystem", str(ours.model_path))))
    assert result.classes == ours.classes and len(result.scores[0][2]) == len(ours.classes)


def test_same_seed_same_model_and_numpy_global_rng_restored(packed, tmp_path: Path) -> None:
    """Bug pinned: results depending on numpy's global RNG (which pyspacer reseeds), or training clobbering it."""
    np.random.seed(1234)
    before = np.random.get_state()
    a = train(packed, replace(ONE_THREAD, epochs=2, seed=5), out_dir=tmp_path / "a")
    b = train(packed, replace(ONE_THREAD, epochs=2, seed=5), out_dir=tmp_path / "b")
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]
    assert np.array_equal(a.val_est, b.val_est) and a.ref_accs == b.ref_accs
    np.testing.assert_array_equal(a.val_scores, b.val_scores)
    c = train(packed, replace(ONE_THREAD, epochs=2, seed=6), out_dir=tmp_path / "c")
    assert not np.array_equal(a.val_scores, c.val_scores)


def test_packed_and_stock_minibatch_accuracy_close(ours, packed, tmp_path: Path) -> None:
    """Bug pinned: our trainer learning something different from pyspacer's stock MiniBatchTrainer."""
    stock = train(packed, Recipe(trainer="minibatch"), out_dir=tmp_path / "stock")
    assert stock.trainer == "minibatch" and stock.classes == ours.classes
    assert stock.val_rows["annotation_id"].equals(ours.val_rows["annotation_id"])  # same val points, same order
    assert np.array_equal(stock.val_gt, ours.val_gt)
    assert len(stock.ref_accs) == len(stock.epoch_seconds) == 10
    assert abs(stock.accuracy - ours.accuracy) <= 0.08, (stock.accuracy, ours.accuracy)
    assert stock.accuracy > 1.5 / len(ours.classes) and ours.accuracy > 1.5 / len(ours.classes)  # learned something
    assert load_classifier(DataLocation("filesystem", str(stock.model_path))).classes_.tolist() == ours.classes
    assert stock.recipe.hidden_layer_sizes == ours.recipe.hidden_layer_sizes == (100,)  # pyspacer's size rule


def test_previous_model_is_scored_on_the_new_val_set(ours, packed, tmp_path: Path) -> None:
    """Bug pinned: previous_model_locs ignored, or scored on another set than the new model's val."""
    again = train(packed, replace(ONE_THREAD, epochs=1, seed=1), previous_model_locs=[str(ours.model_path)],
                  out_dir=tmp_path / "next")
    assert again.previous_accuracies == [pytest.approx(ours.accuracy)]


@pytest.mark.parametrize("weighting", [None, "effective_number"])
def test_lr_classifier(packed, tmp_path: Path, weighting) -> None:
    """Bug pinned: clf_type LR (SGDClassifier, as pyspacer) broken on the packed path, with or without weights."""
    out = train(packed, replace(ONE_THREAD, epochs=2, clf_type="LR", class_weighting=weighting),
                out_dir=tmp_path / "lr")
    clf = load_classifier(DataLocation("filesystem", str(out.model_path)))
    assert type(clf.estimator).__name__ == "SGDClassifier" and clf.classes_.tolist() == out.classes
    assert 0 < out.accuracy <= 1 and out.recipe.hidden_layer_sizes in ((), None)


def test_upstream_preset_trains_weighted_and_stops_on_ref(packed, tmp_path: Path) -> None:
    """Bug pinned: the upstream recipe's pieces (network, weights, early stopping) not reaching the trainer."""
    recipe = replace(TrainingOptions(preset="upstream", epochs=12, blas_threads=1).recipe(),
                     hidden_layer_sizes=(64, 32, 16))
    out = train(packed, recipe, out_dir=tmp_path / "up")
    report = out.report
    assert report.hidden_layer_sizes == (64, 32, 16) and report.learning_rate == 1e-4
    counts = np.bincount(np.searchsorted(out.classes, packed.rows["class_key"].gather(packed.indices("train"))),
                         minlength=len(out.classes))
    expected = balance.effective_number_weights(counts, beta=0.9999, ratio_cap=50.0).astype(np.float32)
    np.testing.assert_array_equal(report.class_weights, expected)
    clf = load_classifier(DataLocation("filesystem", str(out.model_path)))
    assert clf.estimator.hidden_layer_sizes == (64, 32, 16) and clf.estimator.n_iter_ == len(out.epochs)
    losses = [e.ref_loss for e in out.epochs]
    assert report.best_epoch == int(np.argmin(losses))
    assert report.stopped_early == (len(out.epochs) < 12)
    if report.stopped_early:
        assert len(out.epochs) == report.best_epoch + 4  # patience 3


def test_logit_adjustment_auto_is_chosen_on_ref_and_stored(packed, tmp_path: Path) -> None:
    """Bug pinned: tau searched on val (it must be ref), or the stored model lacking the chosen adjustment."""
    out = train(packed, replace(ONE_THREAD, epochs=3, logit_adjustment="auto"), out_dir=tmp_path / "la")
    search = out.report.logit_adjustment
    table = search.candidates
    assert table["tau"].to_list()[0] == 0.0 and table["chosen"].sum() == 1
    chosen = search.row(search.tau)
    assert chosen["ref_accuracy"] >= table["ref_accuracy"][0] - 0.03 - 1e-12
    assert chosen["ref_balanced_accuracy"] == max(table.filter(pl.col("eligible"))["ref_balanced_accuracy"])
    assert out.report.ref_balanced_accuracy == pytest.approx(chosen["ref_balanced_accuracy"])
    fixed = train(packed, replace(ONE_THREAD, epochs=3, logit_adjustment=search.tau), out_dir=tmp_path / "fixed")
    np.testing.assert_array_equal(fixed.val_scores, out.val_scores)  # the stored model is the chosen tau's


def test_subsampled_train_set(packed, tmp_path: Path) -> None:
    """Bug pinned: a subsample reaching ref or val, or the trainer ignoring the kept train rows."""
    result = subsample_train(packed.rows, Subsample("balanced", 300, 5), packed.classes)
    out = train(packed, replace(ONE_THREAD, epochs=2), train_indices=result.kept, out_dir=tmp_path / "sub")
    assert out.details["train_points"] == len(result.kept) == int(result.counts["kept"].sum())
    assert len(out.val_gt) == len(packed.indices("val")) - int(
        packed.rows["class_key"].gather(packed.indices("val")).is_in(list(result.dropped_classes)).sum())
    stock = train(packed, Recipe(trainer="minibatch", epochs=1), train_indices=result.kept, out_dir=tmp_path / "st")
    assert stock.details["train_points"] == len(result.kept)


@pytest.mark.parametrize(("recipe", "match"), [
    (Recipe(trainer="turbo"), "unknown trainer"),
    (Recipe(clf_type="SVM"), "unknown classifier type"),
    (Recipe(epochs=0), "epochs must be a positive integer"),
])
def test_bad_training_options(packed, tmp_path: Path, recipe, match) -> None:
    with pytest.raises(TrainConfigError, match=match):
        train(packed, recipe, out_dir=tmp_path)


def test_packed_trainer_refuses_stock_labels() -> None:
    """Bug pinned: PackedTrainer given per-image ImageLabels failing with an AttributeError."""
    labels = TrainingTaskLabels(ImageLabels.example(), ImageLabels.example(), ImageLabels.example())
    with pytest.raises(TrainDataError, match="packed labels"):
        PackedTrainer()(labels, 1, [], "MLP")
