"""Plots of the val metrics (matplotlib's object API with the Agg canvas: no pyplot, no global backend).

Readable at 200 classes: the confusion matrix shows the 30 classes with most val points in taxonomic order
(the rest folded into "other", ``metrics.confusion``), the per-class chart the 40 with most points; every
class is in ``confusion_matrix.csv`` and ``per_label.csv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from mermaid_train.metrics.classification import CALIBRATION_BINS
from mermaid_train.metrics.confusion import DEFAULT_TOP, fold_confusion

if TYPE_CHECKING:
    from mermaid_train.metrics.evaluate import ValMetrics

PER_CLASS_TOP = 40  # classes in the per-class chart (most val points first; all are in per_label.csv)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_confusion(metrics: ValMetrics, path: Path, *, top: int = DEFAULT_TOP) -> Path:
    """Row-normalized confusion of the ``top`` classes by support, in taxonomic order, the rest as "other".

    Names on both axes; lines between root groups, whose names stand on the right. Recall is on the diagonal.
    """
    folded = fold_confusion(metrics.confusion, metrics.classes, metrics.class_names, metrics.roots, top=top)
    m = len(folded.names)
    size = min(4 + 0.28 * m, 14)
    fig = _figure(size + 4, size + 2)
    ax = fig.add_subplot(1, 1, 1)
    rows = folded.counts.sum(axis=1, keepdims=True)
    norm = np.divide(folded.counts, np.maximum(rows, 1), dtype=np.float64)
    image = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.035, pad=0.12, label="share of the true class's points")
    labels = [_short(n) for n in folded.names]
    fontsize = 8 if m <= 30 else 6
    ax.set_xticks(range(m), labels, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(m), labels, fontsize=fontsize)
    for i in range(m):  # the diagonal's recall as text, where it fits
        if m <= 40 and rows[i, 0]:
            ax.text(i, i, f"{norm[i, i]:.2f}", ha="center", va="center", fontsize=5,
                    color="white" if norm[i, i] > 0.5 else "black")
    if metrics.roots is not None:
        groups = _runs(folded.roots)
        for start, stop, name in groups:
            if start:
                ax.axhline(start - 0.5, color="grey", linewidth=0.6)
                ax.axvline(start - 0.5, color="grey", linewidth=0.6)
            if name:
                ax.annotate(_short(name, 22), xy=(1.0, 1 - (start + stop) / 2 / m), xycoords="axes fraction",
                            xytext=(4, 0), textcoords="offset points", va="center", fontsize=fontsize,
                            fontweight="bold")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    shown = f"top {m - 1} of {len(metrics.classes)} classes by support, the rest as other" if folded.folded else \
        f"{m} classes"
    ax.set_title(f"confusion ({shown}; n={int(metrics.confusion.sum()):,}, accuracy "
                 f"{metrics.headline['accuracy']:.3f})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_per_class(metrics: ValMetrics, path: Path, *, top: int = PER_CLASS_TOP) -> Path:
    """F1 (bars) and val points (right axis, dots) of the ``top`` classes by support, with names."""
    table = metrics.per_label.sort(["support", "class_key"], descending=[True, False]).head(top)
    n = table.height
    fig = _figure(10, max(3.0, 1.2 + 0.24 * n))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(n)
    f1 = table["f1"].to_numpy()
    ax.barh(y, f1, color="C0", alpha=0.8, label="F1")
    ax.set_yticks(y, [_short(v, 40) for v in table["name"].to_list()], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 (val)")
    support_ax = ax.twiny()
    support_ax.plot(table["support"].to_numpy(), y, "o", color="C1", markersize=4, label="val points")
    support_ax.set_xscale("log")
    support_ax.set_xlabel("val points (log)", color="C1")
    more = f"{n} of {len(metrics.classes)} classes" if len(metrics.classes) > n else f"{n} classes"
    ax.set_title(f"per-class F1 and support ({more}, most val points first)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_taxonomy(metrics: ValMetrics, path: Path) -> Path:
    """Per true root group: shares of its val points right, a wrong growth form, the same group, another group."""
    table = metrics.taxonomy_breakdown()
    n = table.height
    fig = _figure(10, max(2.5, 1.4 + 0.35 * n))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(n)
    points = np.maximum(table["points"].to_numpy(), 1)
    left = np.zeros(n)
    for column, label, color in (("correct", "correct", "#4c9f70"),
                                 ("wrong_growth_form", "right attribute, wrong growth form", "#a7d3a6"),
                                 ("same_group", "another attribute of the same group", "#f2c14e"),
                                 ("other_group", "another group", "#d1495b")):
        share = table[column].to_numpy() / points
        ax.barh(y, share, left=left, color=color, label=label)
        left += share
    ax.set_yticks(y, [f"{_short(r, 30)} (n={p:,})" for r, p in zip(table["root_group"], table["points"])], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the group's val points")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=7, frameon=False)
    split = metrics.headline.get("error_same_root_share")
    title = "errors by root group of the true class"
    if split is not None:
        title += f": {split:.1%} of the errors stay within the group"
    ax.set_title(title, fontsize=9, pad=36)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _runs(values: list[str]) -> list[tuple[int, int, str]]:
    """``(start, stop, value)`` of each run of equal consecutive values."""
    out: list[tuple[int, int, str]] = []
    for i, value in enumerate(values):
        if out and out[-1][2] == value:
            out[-1] = (out[-1][0], i + 1, value)
        else:
            out.append((i, i + 1, value))
    return out


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


__all__ = ["plot_confusion", "plot_epochs", "plot_per_class", "plot_reliability", "plot_taxonomy"]
