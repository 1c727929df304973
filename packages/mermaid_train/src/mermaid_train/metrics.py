"""Validation metrics of a trained classifier, vectorized (numpy / scikit-learn), plus their CSVs and plots.

Everything works on integer class indices (``y_true``, ``y_pred`` index ``classes``) and per-point arrays
(image id, source key, confidence or the full probability matrix); no per-row Python loop.

Definitions (also in docs/training.md):

- ``balanced_accuracy``: mean recall over the classes present in the val set's ground truth.
- ``macro_precision/recall/f1``: unweighted means over the classes that occur in truth or prediction.
- ``top_k_accuracy``: truth among the k highest scores; only when the full probability matrix is known
  and ``k`` is below the class count.
- ``ece``: expected calibration error of the top-1 confidence, 10 equal-width bins:
  ``sum_b n_b / n * |accuracy_b - confidence_b|``.
- Per-image cover: for image ``i`` and class ``c``, ``e[i, c] = 100 * (predicted share - true share)`` of
  the image's points. ``cover_mean_abs_bias_pp`` is the mean over classes of ``|mean_i e[i, c]|``
  (systematic over/under-estimation of a class's cover), ``cover_rmse_pp`` is ``sqrt(mean e²)`` over
  images and classes; both in percentage points, over the classes seen in truth or prediction.
- Per-source accuracy: accuracy of each source's val points; min / median / max over sources.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import precision_recall_fscore_support

TOP_K = (1, 3, 5)
CALIBRATION_BINS = 10


@dataclass
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
    files: dict[str, Path] = field(default_factory=dict)

    def confusion_frame(self) -> pl.DataFrame:
        """The confusion matrix with a ``true_class`` column and one column per predicted class."""
        data = {"true_class": self.classes}
        for j, key in enumerate(self.classes):
            data[key] = self.confusion[:, j].tolist()
        return pl.DataFrame(data)

    def write(self, out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
        """Write metrics.json, the CSV tables and (with ``plots``) the PNGs; return name -> path."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {
            "metrics.json": out / "metrics.json",
            "per_label.csv": out / "per_label.csv",
            "confusion_matrix.csv": out / "confusion_matrix.csv",
            "per_source.csv": out / "per_source.csv",
            "per_image_cover.csv": out / "per_image_cover.csv",
            "calibration.csv": out / "calibration.csv",
            "epochs.csv": out / "epochs.csv",
        }
        files["metrics.json"].write_text(json.dumps(self.headline, indent=2, sort_keys=True))
        self.per_label.write_csv(files["per_label.csv"])
        self.confusion_frame().write_csv(files["confusion_matrix.csv"])
        self.per_source.write_csv(files["per_source.csv"])
        self.per_image.write_csv(files["per_image_cover.csv"])
        self.calibration.write_csv(files["calibration.csv"])
        self.epochs.write_csv(files["epochs.csv"])
        if plots:
            files["confusion_matrix.png"] = plot_confusion(self, out / "confusion_matrix.png")
            files["reliability.png"] = plot_reliability(self, out / "reliability.png")
            files["ref_accuracy.png"] = plot_epochs(self, out / "ref_accuracy.png")
        self.files = files
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
    ref_accs: Sequence[float] = (),
    epoch_seconds: Sequence[float] = (),
) -> ValMetrics:
    """All val metrics. ``scores`` is either the [n, k] probability matrix or the [n] top-1 confidence."""
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
    confusion = np.bincount(yt * k + yp, minlength=k * k).reshape(k, k)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    seen = np.flatnonzero((support + predicted) > 0)
    precision, recall, f1, _ = precision_recall_fscore_support(
        yt, yp, labels=np.arange(k), zero_division=0
    )

    headline: dict[str, float] = {
        "accuracy": float(correct.mean()),
        "balanced_accuracy": float(recall[support > 0].mean()),
        "macro_precision": float(precision[seen].mean()),
        "macro_recall": float(recall[seen].mean()),
        "macro_f1": float(f1[seen].mean()),
        "val_points": float(n),
        "val_classes": float((support > 0).sum()),
    }
    if proba is not None:
        order = np.argsort(-proba, axis=1, kind="stable")
        for top in TOP_K:
            if top == 1 or top < k:
                hit = (order[:, :top] == yt[:, None]).any(axis=1)
                headline[f"top_{top}_accuracy"] = float(hit.mean())
    else:
        headline["top_1_accuracy"] = headline["accuracy"]

    calibration = _calibration(confidence, correct) if confidence is not None else _empty_calibration()
    if confidence is not None:
        counts = calibration["count"].to_numpy()
        gaps = np.abs(calibration["accuracy"].to_numpy() - calibration["confidence"].to_numpy())
        headline["ece"] = float(np.nansum(counts * gaps) / n)
        headline["mean_confidence"] = float(confidence.mean())

    images = np.asarray(image_ids).astype(str) if image_ids is not None else np.zeros(n, dtype="U1")
    sources = np.asarray(source_keys).astype(str) if source_keys is not None else np.full(n, "all")
    per_image, cover_bias, cover_rmse, cover_headline = _cover(yt, yp, k, images, sources, seen)
    headline.update(cover_headline)

    per_source = _per_source(sources, images, correct)
    if per_source.height:
        acc = per_source["accuracy"].to_numpy()
        headline["source_accuracy_min"] = float(acc.min())
        headline["source_accuracy_median"] = float(np.median(acc))
        headline["source_accuracy_max"] = float(acc.max())
        headline["val_sources"] = float(per_source.height)

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
    ).sort(["support", "class_key"], descending=[True, False])

    ref = [float(a) for a in ref_accs]
    secs = [float(s) for s in epoch_seconds]
    epochs_n = max(len(ref), len(secs))
    epochs = pl.DataFrame(
        {
            "epoch": list(range(epochs_n)),
            "ref_accuracy": ref + [None] * (epochs_n - len(ref)),
            "epoch_seconds": secs + [None] * (epochs_n - len(secs)),
        },
        schema={"epoch": pl.Int64, "ref_accuracy": pl.Float64, "epoch_seconds": pl.Float64},
    )
    if ref:
        headline["final_ref_accuracy"] = ref[-1]
    if secs:
        headline["train_epochs_seconds"] = float(sum(secs))
    return ValMetrics(headline, classes, names, confusion, per_label, per_source, per_image, calibration, epochs)


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


def _calibration(confidence: np.ndarray, correct: np.ndarray) -> pl.DataFrame:
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, CALIBRATION_BINS - 1)
    count = np.bincount(which, minlength=CALIBRATION_BINS)
    conf_sum = np.bincount(which, weights=confidence, minlength=CALIBRATION_BINS)
    hit_sum = np.bincount(which, weights=correct.astype(np.float64), minlength=CALIBRATION_BINS)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(count > 0, conf_sum / np.maximum(count, 1), np.nan)
        acc = np.where(count > 0, hit_sum / np.maximum(count, 1), np.nan)
    return pl.DataFrame(
        {"bin_low": edges[:-1], "bin_high": edges[1:], "count": count.astype(np.int64), "confidence": conf,
         "accuracy": acc},
        nan_to_null=False,
    )


def _empty_calibration() -> pl.DataFrame:
    return pl.DataFrame(schema={"bin_low": pl.Float64, "bin_high": pl.Float64, "count": pl.Int64,
                                "confidence": pl.Float64, "accuracy": pl.Float64})


def _cover(yt, yp, k, images, sources, seen):
    """Per-image class shares, predicted vs true: per-image table, per-class bias/RMSE, headline."""
    codes, first, inverse = np.unique(images, return_index=True, return_inverse=True)
    m = codes.shape[0]
    true_counts = np.bincount(inverse * k + yt, minlength=m * k).reshape(m, k).astype(np.float64)
    pred_counts = np.bincount(inverse * k + yp, minlength=m * k).reshape(m, k).astype(np.float64)
    points = true_counts.sum(axis=1)
    err = 100.0 * (pred_counts - true_counts) / points[:, None]
    bias = err.mean(axis=0)
    rmse = np.sqrt((err**2).mean(axis=0))
    errs = err[:, seen]
    headline = {
        "cover_mean_abs_bias_pp": float(np.abs(bias[seen]).mean()),
        "cover_rmse_pp": float(np.sqrt((errs**2).mean())),
        "cover_image_l1_pp_mean": float((0.5 * np.abs(err).sum(axis=1)).mean()),
        "val_images": float(m),
    }
    correct = np.bincount(inverse, weights=(yt == yp).astype(np.float64), minlength=m)
    per_image = pl.DataFrame(
        {
            "image_id": codes.astype(str),
            "source": sources[first],
            "points": points.astype(np.int64),
            "accuracy": correct / points,
            # half the L1 distance of the share vectors: the share of points whose class would have to
            # change for the predicted cover to equal the true cover, in percentage points
            "cover_l1_pp": 0.5 * np.abs(err).sum(axis=1),
            "cover_max_abs_error_pp": np.abs(err).max(axis=1),
        }
    )
    return per_image, bias, rmse, headline


def _per_source(sources: np.ndarray, images: np.ndarray, correct: np.ndarray) -> pl.DataFrame:
    frame = pl.DataFrame({"source": sources, "image_id": images, "correct": correct})
    return (
        frame.group_by("source")
        .agg(
            pl.len().alias("annotations"),
            pl.col("image_id").n_unique().alias("images"),
            pl.col("correct").mean().alias("accuracy"),
        )
        .with_columns(pl.col("annotations").cast(pl.Int64), pl.col("images").cast(pl.Int64))
        .sort("source")
    )


# ---- plots (matplotlib's object API with the Agg canvas: no pyplot, no global backend change) -------------


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_confusion(metrics: ValMetrics, path: Path) -> Path:
    """Row-normalized confusion matrix (recall on the diagonal); labels shown up to 40 classes."""
    k = len(metrics.classes)
    size = min(5 + 0.2 * k, 12) if k <= 40 else 9
    fig = _figure(size + 1.5, size)
    ax = fig.add_subplot(1, 1, 1)
    rows = metrics.confusion.sum(axis=1, keepdims=True)
    norm = np.divide(metrics.confusion, np.maximum(rows, 1), dtype=np.float64)
    image = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if k <= 40:
        labels = [_short(n) for n in metrics.class_names]
        ax.set_xticks(range(k), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(k), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion (val, n={int(metrics.confusion.sum()):,}, accuracy {metrics.headline['accuracy']:.3f})")
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_reliability(metrics: ValMetrics, path: Path) -> Path:
    """Accuracy vs confidence per bin, with the diagonal of perfect calibration."""
    fig = _figure(5, 5)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    cal = metrics.calibration.filter(pl.col("count") > 0)
    if cal.height:
        centers = ((cal["bin_low"] + cal["bin_high"]) / 2).to_numpy()
        ax.bar(centers, cal["accuracy"].to_numpy(), width=1 / CALIBRATION_BINS, alpha=0.6, edgecolor="black",
               label="accuracy")
        ax.plot(cal["confidence"].to_numpy(), cal["accuracy"].to_numpy(), marker="o", color="C1",
                label="mean confidence")
    ece = metrics.headline.get("ece")
    ax.set_title("reliability (val)" + (f", ECE {ece:.3f}" if ece is not None else ""))
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_epochs(metrics: ValMetrics, path: Path) -> Path:
    """Ref accuracy per epoch."""
    fig = _figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    ep = metrics.epochs.drop_nulls("ref_accuracy")
    if ep.height:
        ax.plot(ep["epoch"].to_numpy(), ep["ref_accuracy"].to_numpy(), marker="o")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ref accuracy")
    ax.set_title("ref accuracy per epoch")
    fig.tight_layout()
    fig.savefig(path)
    return path


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


__all__ = ["ValMetrics", "compute_val_metrics", "plot_confusion", "plot_epochs", "plot_reliability"]
