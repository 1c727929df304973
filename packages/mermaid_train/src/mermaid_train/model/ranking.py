"""What a prediction is: the top-k classes of each point with names and calibrated scores (numpy only).

Shared by ``mermaid-train predict`` and the logged MLflow model's python_function (``model/pyfunc.py``),
which ships this file as its code, so it imports nothing but numpy: a served model needs no
``mermaid_train``.

Columns of ``prediction_columns`` (per point, in this order):

- ``predicted_class_key``, ``predicted_name``: the top class, or null when the point is low-confidence;
- ``confidence``: the top class's calibrated score; ``low_confidence``: ``confidence < min_confidence``
  (MERMAID leaves points under 0.5 unclassified; never true without a ``min_confidence``);
- per rank r = 1..k: ``top{r}_class_key``, ``top{r}_benthic_attribute_id``, ``top{r}_benthic_attribute_name``,
  ``top{r}_growth_form_id``, ``top{r}_growth_form_name``, ``top{r}_name``, ``top{r}_score``.

Ties between scores rank the lower class index (sorted class keys, as sklearn keeps them) first.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TOP_K = 3
CHUNK = 16_384  # points per predict_proba call
LABEL_FIELDS = ("class_key", "benthic_attribute_id", "benthic_attribute_name", "growth_form_id", "growth_form_name",
                "name")


def top_k(proba: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(class indices [n, k], scores [n, k])``, best first; ``k`` is capped at the class count."""
    proba = np.asarray(proba)
    n, classes = proba.shape
    k = max(1, min(int(k), classes))
    if k < classes:
        candidates = np.argpartition(-proba, k - 1, axis=1)[:, :k]
    else:
        candidates = np.broadcast_to(np.arange(classes), (n, classes))
    scores = np.take_along_axis(proba, candidates, axis=1)
    # by score descending, then class index ascending (deterministic under ties)
    order = np.lexsort((candidates, -scores), axis=1) if n else np.zeros((0, k), dtype=np.int64)
    index = np.take_along_axis(candidates, order, axis=1)
    return index, np.take_along_axis(scores, order, axis=1)


def prediction_columns(proba: np.ndarray, labels: dict[str, np.ndarray], *, k: int = DEFAULT_TOP_K,
                       min_confidence: float | None = None) -> dict[str, np.ndarray]:
    """The columns of the module docstring; ``labels`` maps each of ``LABEL_FIELDS`` to an array over the classes.

    Raises ``ValueError`` when ``min_confidence`` is not a probability.
    """
    if min_confidence is not None and not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(f"min_confidence {min_confidence} is not a probability: pass a value in [0, 1], e.g. 0.5")
    index, scores = top_k(proba, k)
    confidence = scores[:, 0].astype(np.float64)
    low = confidence < float(min_confidence) if min_confidence else np.zeros(len(confidence), dtype=bool)
    best = index[:, 0]
    columns: dict[str, np.ndarray] = {
        "predicted_class_key": np.where(low, None, labels["class_key"][best]),
        "predicted_name": np.where(low, None, labels["name"][best]),
        "confidence": confidence,
        "low_confidence": low,
    }
    for rank in range(index.shape[1]):
        for field in LABEL_FIELDS:
            columns[f"top{rank + 1}_{field}"] = labels[field][index[:, rank]]
        columns[f"top{rank + 1}_score"] = scores[:, rank].astype(np.float64)
    return columns


def as_features(data, dim: int | None) -> np.ndarray:
    """Feature vectors ``[n, dim]`` as C-contiguous float32, from an array, a list or a pandas frame.

    Any real dtype is accepted (float32 and float64 alike: the model was trained on float32). One vector
    of length ``dim`` is one point. Raises ``ValueError`` naming the expected width.
    """
    values = data.to_numpy() if hasattr(data, "to_numpy") else data
    array = np.asarray(values)
    if array.dtype == object:
        try:
            array = np.asarray(array.tolist(), dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("feature vectors must be numbers (one row of floats per point)") from None
    if array.ndim == 1 and dim is not None and array.shape[0] == dim:
        array = array.reshape(1, dim)
    if array.ndim != 2 or (dim is not None and array.shape[1] != dim):
        raise ValueError(f"expected feature vectors of shape [n, {dim}], got {list(array.shape)}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"feature vectors must be numbers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def predict_proba(model, x: np.ndarray, *, chunk: int = CHUNK, strict: bool = False) -> np.ndarray:
    """``model.predict_proba(x)`` (float64 ``[n, classes]``), ``chunk`` points at a time.

    pyspacer's classifier (sigmoid-calibrated ``MLPClassifier``) goes through ``fast_proba`` unless
    ``strict`` (scikit-learn's own ``predict_proba``): the same scores, without one calibrator call per class.
    """
    fast = None if strict else fast_proba(model)
    out = np.empty((x.shape[0], len(model.classes_)), dtype=np.float64)
    for start in range(0, x.shape[0], chunk):
        part = x[start:start + chunk]
        out[start:start + len(part)] = fast(part) if fast is not None else model.predict_proba(part)
    return out


def fast_proba(model):
    """A numpy ``predict_proba`` for pyspacer's classifier, or None when ``model`` is anything else.

    pyspacer's classifier is a ``CalibratedClassifierCV`` (``cv="prefit"``, sigmoid) over an
    ``MLPClassifier`` (ReLU, softmax out, more than two classes). scikit-learn's ``predict_proba`` runs the
    network and then one calibrator call per class (each checks its input: most of its time at 200+
    classes); this runs the network the same way (in its weights' dtype), then every class's sigmoid
    ``expit(-(a * p + b))`` at once, normalises each row (a row of zeros becomes uniform) and averages
    over the calibrated copies, as scikit-learn does.
    """
    calibrated = getattr(model, "calibrated_classifiers_", None)
    if not calibrated or type(model).__name__ != "CalibratedClassifierCV":
        return None
    classes = np.asarray(model.classes_)
    parts = []
    for member in calibrated:
        net = getattr(member, "estimator", None)
        calibrators = getattr(member, "calibrators", None)
        if (type(net).__name__ != "MLPClassifier" or getattr(member, "method", None) != "sigmoid"
                or getattr(net, "activation", None) != "relu" or getattr(net, "out_activation_", None) != "softmax"
                or len(classes) <= 2 or calibrators is None or len(calibrators) != len(classes)
                or not np.array_equal(np.asarray(net.classes_), classes)
                or not np.array_equal(np.asarray(member.classes), classes)
                or not all(hasattr(c, "a_") and hasattr(c, "b_") for c in calibrators)):
            return None
        dtype = np.result_type(np.float32, *net.coefs_)  # scikit-learn's: float32 weights stay float32
        weights = [np.ascontiguousarray(w, dtype=dtype) for w in net.coefs_]
        biases = [np.asarray(b, dtype=dtype) for b in net.intercepts_]
        a = np.asarray([float(c.a_) for c in calibrators])
        b = np.asarray([float(c.b_) for c in calibrators])
        parts.append((weights, biases, a, b))

    def proba(x: np.ndarray) -> np.ndarray:
        total = np.zeros((x.shape[0], len(classes)), dtype=np.float64)
        for weights, biases, a, b in parts:
            h = np.ascontiguousarray(x, dtype=weights[0].dtype)
            for layer, (w, bias) in enumerate(zip(weights, biases)):
                h = h @ w
                h += bias
                if layer < len(weights) - 1:
                    np.maximum(h, 0, out=h)
            h -= h.max(axis=1, keepdims=True)
            np.exp(h, out=h)
            h /= h.sum(axis=1, keepdims=True)
            p = 1.0 / (1.0 + np.exp(a * h.astype(np.float64) + b))  # expit(-(a * p + b))
            denominator = p.sum(axis=1, keepdims=True)
            p = np.divide(p, denominator, out=np.full_like(p, 1.0 / len(classes)), where=denominator != 0)
            p[(p > 1.0) & (p <= 1.0 + 1e-5)] = 1.0
            total += p
        return total / len(parts)

    return proba
