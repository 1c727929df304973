"""Models in and out: our MLP as a fitted scikit-learn ``MLPClassifier``, calibration, loading, scoring.

Everything that turns weights into a stored classifier, or a stored classifier back into predictions,
is here, so every consumer (pyspacer's ``load_classifier`` / ``classify_features``, MLflow's sklearn
flavor, our own evaluation) sees the same object:

- ``to_mlp_classifier``: an ``MLPClassifier`` with our hyper-parameters, fitted for its structure by one
  ``partial_fit`` on a single zero row of the classes (so every fitted attribute is sklearn's own), then
  given our weights (``coefs_``, ``intercepts_``), training counters and Adam's moments. Its
  ``predict_proba`` is our forward pass (``tests/train/test_model.py`` pins it).
- ``shift_output_bias``: logit adjustment baked into the output layer (MLP or SGD).
- ``calibrate``: ``CalibratedClassifierCV(cv="prefit")`` fitted on the ref set, as pyspacer does.
- ``load_classifier`` / ``location`` / ``predict_proba``: any stored classifier (path or ``s3://``) and its
  probabilities over packed rows, in chunks.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import SGDClassifier
from sklearn.neural_network import MLPClassifier
from spacer.data_classes import DataLocation

from mermaid_train.features.pack import gather
from mermaid_train.model import mlp

EVAL_CHUNK = 16_384


def to_mlp_classifier(params: mlp.Params, classes: np.ndarray, *, learning_rate: float, alpha: float,
                      batch_size: int, seed: int, optimizer: dict | None = None, n_iter: int = 0,
                      samples_seen: int = 0, loss_curve: list[float] | None = None) -> MLPClassifier:
    """A fitted ``MLPClassifier`` holding ``params`` (module docstring); ``classes`` sorted, as sklearn keeps them."""
    arch = params.arch
    hidden = tuple(arch.layer_units[1:-1])
    clf = MLPClassifier(hidden_layer_sizes=hidden, learning_rate_init=learning_rate, alpha=alpha,
                        batch_size=batch_size, random_state=seed)
    with warnings.catch_warnings():  # "batch_size ... clipped": the structural step sees one row
        warnings.simplefilter("ignore", UserWarning)
        clf.partial_fit(np.zeros((1, arch.layer_units[0]), dtype=np.float32), classes[:1], classes=classes)
    for i in range(arch.n_layers):
        if clf.coefs_[i].shape != params.coefs[i].shape or clf.intercepts_[i].shape != params.intercepts[i].shape:
            raise ValueError(f"layer {i}: sklearn built {clf.coefs_[i].shape}, ours is {params.coefs[i].shape}")
        clf.coefs_[i] = params.coefs[i].copy()
        clf.intercepts_[i] = params.intercepts[i].copy()
    if optimizer:
        adam = clf._optimizer  # so that a further partial_fit continues our Adam, not the structural step's
        sizes = [c.size for c in clf.coefs_] + [b.size for b in clf.intercepts_]
        shapes = [c.shape for c in clf.coefs_] + [b.shape for b in clf.intercepts_]
        bounds = np.cumsum([0, *sizes])
        adam.ms = [optimizer["m"][a:b].reshape(s).copy() for a, b, s in zip(bounds[:-1], bounds[1:], shapes)]
        adam.vs = [optimizer["v"][a:b].reshape(s).copy() for a, b, s in zip(bounds[:-1], bounds[1:], shapes)]
        adam.t = int(optimizer["t"])
    clf.n_iter_ = int(n_iter)
    clf.t_ = int(samples_seen)
    if loss_curve:
        clf.loss_curve_ = [float(v) for v in loss_curve]
        clf.loss_ = clf.loss_curve_[-1]
        clf.best_loss_ = min(clf.loss_curve_)
    return clf


def shift_output_bias(clf, shift: np.ndarray) -> None:
    """Subtract ``shift`` (one value per class) from the output layer's bias, in place.

    For a binary MLP (one logistic unit: logit of class 1) the shift is ``shift[1] - shift[0]``.
    """
    shift = np.asarray(shift, dtype=np.float64)
    if isinstance(clf, MLPClassifier):
        bias = clf.intercepts_[-1]
        delta = np.array([shift[1] - shift[0]]) if bias.shape[0] == 1 else shift
        clf.intercepts_[-1] = (bias - delta).astype(bias.dtype)
    elif isinstance(clf, SGDClassifier):
        delta = np.array([shift[1] - shift[0]]) if clf.intercept_.shape[0] == 1 else shift
        clf.intercept_ = clf.intercept_ - delta
    else:  # pragma: no cover - the trainer only builds these two
        raise TypeError(f"cannot shift the bias of {type(clf).__name__}")


def calibrate(clf, ref_x: np.ndarray, ref_labels: np.ndarray,
              sample_weight: np.ndarray | None = None) -> CalibratedClassifierCV:
    """pyspacer's calibration: sigmoid per class, fitted on the ref set, around the trained classifier.

    ``sample_weight`` weights the ref points (class balance: see ``model.spacer``); None is pyspacer's.
    """
    calibrated = CalibratedClassifierCV(clf, cv="prefit")
    if sample_weight is not None:  # sklearn's sigmoid fit wants the weights in its predictions' dtype
        response = clf.predict_proba if hasattr(clf, "predict_proba") and not hasattr(clf, "decision_function") \
            else clf.decision_function
        sample_weight = np.asarray(sample_weight, dtype=np.asarray(response(ref_x[:1])).dtype)
    calibrated.fit(ref_x, ref_labels, sample_weight=sample_weight)
    return calibrated


def location(uri: str | Path) -> DataLocation:
    """pyspacer's ``DataLocation`` for a local path or an ``s3://bucket/key`` URI."""
    text = str(uri)
    if text.startswith("s3://"):
        bucket, _, key = text[len("s3://"):].partition("/")
        return DataLocation("s3", key, bucket_name=bucket)
    return DataLocation("filesystem", str(Path(text).expanduser().resolve()))


def load_classifier(uri: str | Path):
    """A stored pyspacer classifier (local path or ``s3://``), through pyspacer's own loader."""
    from spacer.storage import load_classifier as spacer_load

    return spacer_load(location(uri))


def predict_proba(model, x: np.ndarray, indices: np.ndarray, *, chunk: int = EVAL_CHUNK) -> np.ndarray:
    """``model.predict_proba`` of the packed rows ``indices`` (float64 ``[n, classes]``), in chunks.

    Scored as ``predict`` scores (``ranking.fast_proba`` for pyspacer's classifier, scikit-learn's own
    ``predict_proba`` for anything else), so training, ``evaluate`` and ``predict`` give the same numbers.
    """
    from mermaid_train.model.ranking import fast_proba

    score = fast_proba(model) or model.predict_proba
    out = np.empty((len(indices), len(model.classes_)), dtype=np.float64)
    for start in range(0, len(indices), chunk):
        part = indices[start:start + chunk]
        out[start:start + len(part)] = score(gather(x, part))
    return out
