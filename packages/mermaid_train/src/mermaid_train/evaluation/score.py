"""Score a model's probabilities on a snapshot's rows, counting the classes the model does not know.

Every row is scored (none is dropped for its class): a row whose true class is not among the model's
classes is always wrong. The metrics (``metrics.compute_val_metrics``, the same as training's) are
computed over the model's classes followed by the unknown ones, so ``accuracy`` is over all rows and
``balanced_accuracy`` averages the recall of every class in the truth (0 for an unknown class). The same
figures over the rows of known classes only are ``<name>_known_classes``; ``log_loss`` is over those rows
(an unknown class has probability 0: an infinite loss). ``unknown_class_points`` / ``unknown_classes``
count the rest, and ``EvaluationScores.unknown`` lists them with their names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import polars as pl

from mermaid_train.metrics import Taxonomy, compute_val_metrics
from mermaid_train.results import EvaluationScores

#: Headline figures also reported over the rows of classes the model knows.
KNOWN_KEYS = ("accuracy", "balanced_accuracy", "macro_f1", "mcc", "top_3_accuracy", "top_5_accuracy", "log_loss",
              "ece")
#: Training's names for the scored set ("val_*") as an evaluation names them.
RENAMED = {"val_points": "eval_points", "val_classes": "eval_classes", "val_sources": "eval_sources",
           "val_images": "eval_images"}


def score(
    proba: np.ndarray,
    model_classes: Sequence[str],
    truth: Sequence[str] | np.ndarray | pl.Series,
    *,
    names: dict[str, str] | None = None,
    image_ids: np.ndarray | None = None,
    source_keys: np.ndarray | None = None,
    taxonomy: Taxonomy | None = None,
) -> EvaluationScores:
    """Metrics of ``proba`` (``[n, len(model_classes)]``) against the true class keys ``truth`` (module docstring)."""
    model_classes = [str(c) for c in model_classes]
    k = len(model_classes)
    truth = pl.Series("class_key", truth, dtype=pl.String)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape != (truth.len(), k):
        raise ValueError(f"probabilities are {proba.shape}, expected ({truth.len()}, {k})")
    counts = truth.value_counts(name="rows")
    unknown_keys = sorted(set(counts["class_key"].to_list()) - set(model_classes))
    classes = model_classes + unknown_keys
    names = names or {}
    class_names = [names.get(c, c) for c in classes]
    yt = truth.cast(pl.Enum(classes)).to_physical().to_numpy().astype(np.int64)
    yp = np.argmax(proba, axis=1).astype(np.int64)  # CalibratedClassifierCV.predict: classes_[argmax]
    confidence = proba[np.arange(len(yp)), yp]
    padded = np.hstack([proba, np.zeros((len(yp), len(unknown_keys)))]) if unknown_keys else proba

    everything = compute_val_metrics(yt, yp, classes, scores=padded, image_ids=image_ids, source_keys=source_keys,
                                     class_names=class_names, taxonomy=taxonomy)
    in_model = pl.col("class_key").is_in(model_classes)
    everything = replace(everything, per_label=everything.per_label.with_columns(in_model.alias("in_model")))
    known_mask = yt < k
    known = None
    if known_mask.any():
        known = compute_val_metrics(
            yt[known_mask], yp[known_mask], model_classes, scores=proba[known_mask],
            image_ids=None if image_ids is None else np.asarray(image_ids)[known_mask],
            source_keys=None if source_keys is None else np.asarray(source_keys)[known_mask],
            class_names=class_names[:k], taxonomy=taxonomy)

    headline = {RENAMED.get(key, key): value for key, value in everything.headline.items()}
    headline.pop("log_loss", None)
    if known is not None:
        for key in KNOWN_KEYS:
            if key in known.headline:
                headline[f"{key}_known_classes"] = known.headline[key]
        if "log_loss" in known.headline:
            headline["log_loss"] = known.headline["log_loss"]
    support = np.bincount(yt, minlength=len(classes))
    headline.update({
        "known_class_points": float(known_mask.sum()),
        "unknown_class_points": float((~known_mask).sum()),
        "unknown_classes": float(len(unknown_keys)),
        "model_classes": float(k),
        "model_classes_in_truth": float((support[:k] > 0).sum()),
    })
    unknown = (counts.filter(pl.col("class_key").is_in(unknown_keys))
               .with_columns(pl.col("class_key").replace_strict(names, default=pl.col("class_key")).alias("name"))
               .select("class_key", "name", pl.col("rows").cast(pl.Int64))
               .sort(["rows", "class_key"], descending=[True, False]))
    return EvaluationScores(everything, known, headline, unknown, yt, yp, confidence)


__all__ = ["KNOWN_KEYS", "score"]
