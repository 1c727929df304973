"""Scores of predicted classes and probabilities against the truth, on integer class indices (numpy only).

- ``balanced_accuracy``: mean recall over the classes present in the truth.
- ``mcc``: the multi-class Matthews correlation coefficient (Gorodkin's ``R_K``, what scikit-learn's
  ``matthews_corrcoef`` computes), from the confusion matrix.
- ``log_loss``: mean ``-log p(true class)``, probabilities clipped to ``[1e-15, 1]`` (scikit-learn's default).
- ``expected_calibration_error``: ``sum_b n_b / n * |accuracy_b - confidence_b|`` over 10 equal-width bins
  of the top-1 confidence.
"""

from __future__ import annotations

import numpy as np
import polars as pl

CALIBRATION_BINS = 10
LOG_LOSS_EPS = 1e-15


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """``[k, k]`` counts, rows = truth, columns = prediction."""
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    counts = confusion(np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64), k)
    support = counts.sum(axis=1)
    present = support > 0
    return float((np.diag(counts)[present] / support[present]).mean())


def mcc(counts: np.ndarray) -> float:
    """Matthews correlation coefficient of a confusion matrix (0 when undefined)."""
    c = counts.astype(np.float64)
    t, p, n = c.sum(axis=1), c.sum(axis=0), c.sum()
    correct = np.trace(c)
    cov_pred = n * n - float(p @ p)
    cov_true = n * n - float(t @ t)
    if cov_pred == 0 or cov_true == 0:
        return 0.0
    return float((correct * n - float(t @ p)) / np.sqrt(cov_pred * cov_true))


def log_loss(proba: np.ndarray, y_true: np.ndarray) -> float:
    picked = proba[np.arange(len(y_true)), y_true]
    return float(-np.log(np.clip(picked, LOG_LOSS_EPS, 1.0)).mean())


def calibration_table(confidence: np.ndarray, correct: np.ndarray) -> pl.DataFrame:
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


def expected_calibration_error(calibration: pl.DataFrame, n: int) -> float:
    counts = calibration["count"].to_numpy()
    gaps = np.abs(calibration["accuracy"].to_numpy() - calibration["confidence"].to_numpy())
    return float(np.nansum(counts * gaps) / n)
