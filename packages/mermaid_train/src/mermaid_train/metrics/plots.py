"""Plots of the val metrics (matplotlib's object API with the Agg canvas: no pyplot, no global backend)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from mermaid_train.metrics.classification import CALIBRATION_BINS

if TYPE_CHECKING:
    from mermaid_train.metrics.evaluate import ValMetrics


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
    """Ref accuracy and balanced accuracy per epoch (left), train and ref loss (right); the kept epoch marked."""
    fig = _figure(10, 4)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ep = metrics.epochs
    x = ep["epoch"].to_numpy()
    for ax, columns, label in ((left, ("ref_accuracy", "ref_balanced_accuracy"), "ref score"),
                               (right, ("train_loss", "ref_loss"), "loss")):
        for column in columns:
            values = ep[column].to_numpy().astype(float)
            if np.isfinite(values).any():
                ax.plot(x, values, marker="o", label=column)
        best = ep.filter(pl.col("best"))
        if best.height:
            ax.axvline(best["epoch"][0], color="grey", linestyle="--", label="kept epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(loc="best", fontsize=8)
    left.set_title("ref set per epoch")
    right.set_title("loss per epoch")
    fig.tight_layout()
    fig.savefig(path)
    return path


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


__all__ = ["plot_confusion", "plot_epochs", "plot_reliability"]
