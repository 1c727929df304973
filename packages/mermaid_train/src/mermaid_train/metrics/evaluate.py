"""Score a classifier's predictions on a set of annotations: ``compute_val_metrics`` -> ``ValMetrics``.

It needs nothing from training: integer truths and predictions over ``classes``, optionally the
probability matrix, each point's image and source, and the taxonomy. Any model on any rows (val, a
new source, an earlier model) is scored the same way; per-epoch training records are optional.

Headline figures (also in docs/training.md): ``accuracy``; ``balanced_accuracy`` (mean recall over the
classes in the truth); ``macro_precision/recall/f1`` (over the classes seen in truth or prediction);
``mcc``; with probabilities ``log_loss``, ``top_k_accuracy`` (k below the class count), ``ece`` and
``mean_confidence``; the cover figures (``metrics.cover``); per-source accuracy min / median / max; with
a taxonomy the error split (``metrics.taxonomy``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from sklearn.metrics import precision_recall_fscore_support

from mermaid_train.metrics import plots
from mermaid_train.metrics.classification import (
    calibration_table,
    confusion,
    expected_calibration_error,
    log_loss,
    mcc,
)
from mermaid_train.metrics.confusion import confusion_table
from mermaid_train.metrics.cover import cover, per_source
from mermaid_train.metrics.taxonomy import Taxonomy, error_split, root_breakdown, root_confusion

if TYPE_CHECKING:
    from mermaid_train.model.train import EpochRecord

TOP_K = (1, 3, 5)
EPOCH_SCHEMA = {"epoch": pl.Int64, "train_loss": pl.Float64, "ref_loss": pl.Float64, "ref_accuracy": pl.Float64,
                "ref_balanced_accuracy": pl.Float64, "epoch_seconds": pl.Float64, "best": pl.Boolean}


@dataclass(frozen=True)
class ValMetrics:
    """Headline figures plus the tables behind them."""

    headline: dict[str, float]
    classes: list[str]
    class_names: list[str]
    confusion: np.ndarray  # [k, k] counts, rows = truth, columns = prediction
    per_label: pl.DataFrame
    per_source: pl.DataFrame
    per_image: pl.DataFrame
    calibration: pl.DataFrame
    epochs: pl.DataFrame
    root_confusion: pl.DataFrame | None = None
    roots: list[str] | None = None  # root group name per class (with a taxonomy)

    def confusion_frame(self) -> pl.DataFrame:
        """The full confusion matrix in taxonomic order with names (``metrics.confusion.confusion_table``)."""
        return confusion_table(self.confusion, self.classes, self.class_names, self.roots)

    def taxonomy_breakdown(self) -> pl.DataFrame | None:
        """Per true root group: points right, wrong growth form, same group, other group (None without roots)."""
        return None if self.roots is None else root_breakdown(self.confusion, self.classes, self.roots)

    def write(self, out_dir: str | Path, *, plots_too: bool = True) -> dict[str, Path]:
        """Write metrics.json, the CSV tables and (with ``plots_too``) the PNGs; return name -> path."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tables = {"per_label.csv": self.per_label, "confusion_matrix.csv": self.confusion_frame(),
                  "per_source.csv": self.per_source, "per_image_cover.csv": self.per_image,
                  "calibration.csv": self.calibration, "epochs.csv": self.epochs}
        if self.root_confusion is not None:
            tables["root_confusion.csv"] = self.root_confusion
            tables["taxonomy_errors.csv"] = self.taxonomy_breakdown()
        files = {"metrics.json": out / "metrics.json"}
        files["metrics.json"].write_text(json.dumps(
            {k: v for k, v in self.headline.items() if not math.isnan(v)}, indent=2, sort_keys=True))
        for name, table in tables.items():
            files[name] = out / name
            table.write_csv(files[name])
        if plots_too:
            files.update(self.write_plots(out))
        return files

    def write_plots(self, out_dir: str | Path) -> dict[str, Path]:
        """The PNGs (``metrics.plots``); returns name -> path. The report embeds the same files."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {"confusion_matrix.png": plots.plot_confusion(self, out / "confusion_matrix.png"),
                 "per_class_f1.png": plots.plot_per_class(self, out / "per_class_f1.png"),
                 "reliability.png": plots.plot_reliability(self, out / "reliability.png")}
        if self.roots is not None:
            files["taxonomy_errors.png"] = plots.plot_taxonomy(self, out / "taxonomy_errors.png")
        if self.epochs.height:
            files["epochs.png"] = plots.plot_epochs(self, out / "epochs.png")
        return files


def compute_val_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    classes: Sequence[str],
    *,
    scores: np.ndarray | Sequence[float] | None = None,
    image_ids: Sequence[str] | np.ndarray | None = None,
    source_keys: Sequence[str] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    taxonomy: Taxonomy | None = None,
    epochs: Sequence[EpochRecord] = (),
    best_epoch: int | None = None,
) -> ValMetrics:
    """All metrics. ``scores`` is either the [n, k] probability matrix or the [n] top-1 confidence."""
    classes = [str(c) for c in classes]
    k = len(classes)
    names = [str(n) for n in class_names] if class_names is not None else list(classes)
    yt = np.asarray(y_true, dtype=np.int64)
    yp = np.asarray(y_pred, dtype=np.int64)
    n = yt.shape[0]
    if yp.shape != yt.shape:
        raise ValueError(f"y_true has {yt.shape[0]} points, y_pred {yp.shape[0]}")
    if n == 0:
        raise ValueError("no validation points")
    if yt.min() < 0 or yp.min() < 0 or yt.max() >= k or yp.max() >= k:
        raise ValueError("class indices out of range")
    correct = yt == yp

    proba, confidence = _split_scores(scores, n, k)
    counts = confusion(yt, yp, k)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    seen = np.flatnonzero((support + predicted) > 0)
    precision, recall, f1, _ = precision_recall_fscore_support(yt, yp, labels=np.arange(k), zero_division=0)

    headline: dict[str, float] = {
        "accuracy": float(correct.mean()),
        "balanced_accuracy": float(recall[support > 0].mean()),
        "macro_precision": float(precision[seen].mean()),
        "macro_recall": float(recall[seen].mean()),
        "macro_f1": float(f1[seen].mean()),
        "mcc": mcc(counts),
        "val_points": float(n),
        "val_classes": float((support > 0).sum()),
    }
    if proba is not None:
        headline["log_loss"] = log_loss(proba, yt)
        order = np.argsort(-proba, axis=1, kind="stable")
        for top in TOP_K:
            if top == 1 or top < k:
                headline[f"top_{top}_accuracy"] = float((order[:, :top] == yt[:, None]).any(axis=1).mean())
    else:
        headline["top_1_accuracy"] = headline["accuracy"]

    if confidence is not None:
        calibration = calibration_table(confidence, correct)
        headline["ece"] = expected_calibration_error(calibration, n)
        headline["mean_confidence"] = float(confidence.mean())
    else:
        calibration = pl.DataFrame(schema={"bin_low": pl.Float64, "bin_high": pl.Float64, "count": pl.Int64,
                                           "confidence": pl.Float64, "accuracy": pl.Float64})

    images = np.asarray(image_ids).astype(str) if image_ids is not None else np.zeros(n, dtype="U1")
    sources = np.asarray(source_keys).astype(str) if source_keys is not None else np.full(n, "all")
    per_image, cover_bias, cover_rmse, cover_headline = cover(yt, yp, k, images, sources, seen)
    headline.update(cover_headline)

    by_source = per_source(sources, images, correct)
    if by_source.height:
        acc = by_source["accuracy"].to_numpy()
        headline["source_accuracy_min"] = float(acc.min())
        headline["source_accuracy_median"] = float(np.median(acc))
        headline["source_accuracy_max"] = float(acc.max())
        headline["val_sources"] = float(by_source.height)

    roots = root_names = None
    if taxonomy is not None:
        headline.update(error_split(yt, yp, classes, taxonomy))
        roots = root_confusion(yt[~correct], yp[~correct], classes, taxonomy)
        root_names = taxonomy.root_names(classes)

    per_label = pl.DataFrame(
        {
            "class_key": classes,
            "name": names,
            "support": support.astype(np.int64),
            "predicted": predicted.astype(np.int64),
            "precision": precision.astype(float),
            "recall": recall.astype(float),
            "f1": f1.astype(float),
            "cover_bias_pp": cover_bias,
            "cover_rmse_pp": cover_rmse,
        }
    )
    if root_names is not None:
        per_label = per_label.insert_column(2, pl.Series("root_group", root_names, dtype=pl.String))
    per_label = per_label.sort(["support", "class_key"], descending=[True, False])

    records = list(epochs)
    best = best_epoch if best_epoch is not None else len(records) - 1
    epoch_table = pl.DataFrame(
        {"epoch": [e.epoch for e in records], "train_loss": [e.train_loss for e in records],
         "ref_loss": [e.ref_loss for e in records], "ref_accuracy": [e.ref_accuracy for e in records],
         "ref_balanced_accuracy": [e.ref_balanced_accuracy for e in records],
         "epoch_seconds": [e.seconds for e in records], "best": [e.epoch == best for e in records]},
        schema=EPOCH_SCHEMA, nan_to_null=True,
    )
    if records:
        kept = records[best]
        headline["epochs_run"] = float(len(records))
        headline["best_epoch"] = float(kept.epoch)
        headline["final_ref_accuracy"] = float(kept.ref_accuracy)
        if not math.isnan(kept.ref_balanced_accuracy):
            headline["final_ref_balanced_accuracy"] = float(kept.ref_balanced_accuracy)
        seconds = [e.seconds for e in records if not math.isnan(e.seconds)]
        if seconds:
            headline["train_epochs_seconds"] = float(sum(seconds))
    return ValMetrics(headline, classes, names, counts, per_label, by_source, per_image, calibration, epoch_table,
                      roots, root_names)


def _split_scores(scores, n: int, k: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    if scores is None:
        return None, None
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim == 2:
        if arr.shape != (n, k):
            raise ValueError(f"score matrix is {arr.shape}, expected ({n}, {k})")
        return arr, arr.max(axis=1)
    if arr.shape != (n,):
        raise ValueError(f"{arr.shape[0]} scores for {n} points")
    return None, arr
