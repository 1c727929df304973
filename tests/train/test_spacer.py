"""PackedTrainer through spacer.tasks.train_classifier: pyspacer-loadable model, bookkeeping, parity with stock."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mermaid_train.errors import TrainConfigError, TrainDataError
from mermaid_train.trainer import (
    InPlaceAdam,
    PackedLabels,
    PackedTrainer,
    _name_classes,
    packed_task_labels,
    train,
)
from sklearn.linear_model import SGDClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer
from spacer.data_classes import DataLocation, ImageLabels, ValResults
from spacer.messages import ClassifyFeaturesMsg, TrainingTaskLabels
from spacer.storage import load_classifier
from spacer.task_utils import preprocess_labels
from spacer.tasks import classify_features
from spacer.train_classifier import ClassifierTrainer


@pytest.fixture(scope="module")
def packed(train_packed):
    return train_packed[1]


@pytest.fixture(scope="module")
def ours(packed, tmp_path_factory):
    """Our trainer, 10 epochs, seed 0 (shared: read-only)."""
    return train(packed, epochs=10, seed=0, out_dir=tmp_path_factory.mktemp("ours"))


def test_trainer_serializes_and_deserializes() -> None:
    """Bug pinned: pyspacer stores trainers in messages; ours must rebuild from its serialized form."""
    trainer = PackedTrainer(pack_dir="/w/packed/snap-x/k", batch_size=1000, seed=3,
                            mlp_hidden_layer_sizes=(50, 20), mlp_learning_rate_init=0.01)
    data = json.loads(json.dumps(trainer.serialize()))
    assert data["class_path"] == "mermaid_train.trainer.PackedTrainer"
    back = ClassifierTrainer.deserialize(data)
    assert isinstance(back, PackedTrainer) and back == trainer
    assert back.mlp_hidden_layer_sizes == (50, 20) and back.seed == 3 and back.pack_dir == "/w/packed/snap-x/k"
    assert PackedTrainer().serialize() == {"class_path": "mermaid_train.trainer.PackedTrainer"}


def test_in_place_adam_gives_sklearns_weights_bit_for_bit() -> None:
    """Bug pinned: the faster Adam step drifting from sklearn's (the recipe must stay sklearn's MLP)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 40)).astype(np.float32)
    y = rng.integers(0, 4, 600).astype(str)
    fitted = []
    for fast in (False, True):
        clf = MLPClassifier(hidden_layer_sizes=(30, 20), learning_rate_init=1e-3, random_state=np.random.RandomState(3))
        for start in range(0, 600, 150):
            clf.partial_fit(x[start:start + 150], y[start:start + 150], classes=np.unique(y))
            if fast and type(clf._optimizer) is AdamOptimizer:
                clf._optimizer.__class__ = InPlaceAdam
        fitted.append(clf)
    a, b = fitted
    assert type(b._optimizer) is InPlaceAdam and a._optimizer.t == b._optimizer.t
    for u, w in zip(a.coefs_ + a.intercepts_ + a._optimizer.ms + a._optimizer.vs,
                    b.coefs_ + b.intercepts_ + b._optimizer.ms + b._optimizer.vs):
        assert u.dtype == w.dtype == np.float32 and np.array_equal(u, w)


@pytest.mark.parametrize("make", [
    lambda: MLPClassifier(hidden_layer_sizes=(20,), random_state=np.random.RandomState(0)),
    lambda: SGDClassifier(loss="log_loss", average=True, random_state=0),
])
def test_training_on_class_indices_equals_training_on_names(make) -> None:
    """Bug pinned: the index-label shortcut changing the model (columns must map to the sorted names)."""
    rng = np.random.default_rng(1)
    names = np.array(["a::", "b::x", "c::", "d::y"])
    x = rng.standard_normal((400, 12)).astype(np.float32)
    codes = rng.integers(0, 4, 400)
    by_name, by_code = make(), make()
    for start in range(0, 400, 100):
        part = slice(start, start + 100)
        by_name.partial_fit(x[part], names[codes[part]], classes=names)
        by_code.partial_fit(x[part], codes[part], classes=np.arange(4))
    _name_classes(by_code, names)
    assert by_code.classes_.tolist() == by_name.classes_.tolist() == names.tolist()
    np.testing.assert_array_equal(by_code.predict_proba(x), by_name.predict_proba(x))
    assert (by_code.predict(x) == by_name.predict(x)).all()


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
    a = train(packed, epochs=2, seed=5, out_dir=tmp_path / "a")
    b = train(packed, epochs=2, seed=5, out_dir=tmp_path / "b")
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]
    assert np.array_equal(a.val_est, b.val_est) and a.ref_accs == b.ref_accs
    np.testing.assert_array_equal(a.val_scores, b.val_scores)
    c = train(packed, epochs=2, seed=6, out_dir=tmp_path / "c")
    assert not np.array_equal(a.val_scores, c.val_scores)


def test_packed_and_stock_minibatch_accuracy_close(ours, packed, tmp_path: Path) -> None:
    """Bug pinned: our trainer learning something different from pyspacer's stock MiniBatchTrainer."""
    stock = train(packed, epochs=10, trainer="minibatch", out_dir=tmp_path / "stock")
    assert stock.trainer == "minibatch" and stock.classes == ours.classes
    assert stock.val_rows["annotation_id"].equals(ours.val_rows["annotation_id"])  # same val points, same order
    assert np.array_equal(stock.val_gt, ours.val_gt)
    assert len(stock.ref_accs) == len(stock.epoch_seconds) == 10
    assert abs(stock.accuracy - ours.accuracy) <= 0.08, (stock.accuracy, ours.accuracy)
    assert stock.accuracy > 1.5 / len(ours.classes) and ours.accuracy > 1.5 / len(ours.classes)  # learned something
    assert load_classifier(DataLocation("filesystem", str(stock.model_path))).classes_.tolist() == ours.classes


def test_previous_model_is_scored_on_the_new_val_set(ours, packed, tmp_path: Path) -> None:
    """Bug pinned: previous_model_locs ignored, or scored on another set than the new model's val."""
    again = train(packed, epochs=1, seed=1, previous_model_locs=[str(ours.model_path)], out_dir=tmp_path / "next")
    assert again.previous_accuracies == [pytest.approx(ours.accuracy)]


def test_lr_classifier(packed, tmp_path: Path) -> None:
    """Bug pinned: clf_type LR (SGDClassifier, as pyspacer) broken on the packed path."""
    out = train(packed, epochs=2, clf_type="LR", out_dir=tmp_path / "lr")
    clf = load_classifier(DataLocation("filesystem", str(out.model_path)))
    assert type(clf.estimator).__name__ == "SGDClassifier" and clf.classes_.tolist() == out.classes
    assert 0 < out.accuracy <= 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"trainer": "turbo"}, "unknown trainer"),
    ({"clf_type": "SVM"}, "unknown classifier type"),
    ({"epochs": 0}, "epochs must be a positive integer"),
])
def test_bad_training_options(packed, tmp_path: Path, kwargs, match) -> None:
    with pytest.raises(TrainConfigError, match=match):
        train(packed, out_dir=tmp_path, **kwargs)


def test_packed_trainer_refuses_stock_labels() -> None:
    """Bug pinned: PackedTrainer given per-image ImageLabels failing with an AttributeError."""
    labels = TrainingTaskLabels(ImageLabels.example(), ImageLabels.example(), ImageLabels.example())
    with pytest.raises(TrainDataError, match="packed labels"):
        PackedTrainer()(labels, 1, [], "MLP")
