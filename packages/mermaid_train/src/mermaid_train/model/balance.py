"""Class balance, two ways: weights in the loss, and logit adjustment after training.

Effective-number weights (Cui et al., 2019)
    A class with ``n`` training points gets ``(1 - beta) / (1 - beta**n)`` (``beta`` = ``weighting_beta``,
    0.9999): about ``1 / n`` for small classes, flattening out for classes much bigger than
    ``1 / (1 - beta)``. With ``weight_ratio_cap`` the largest weight is at most that many times the
    smallest. The weights are then scaled so that the mean weight of a training point is 1 (the loss
    stays on the scale of the unweighted one, and the learning rate means the same).

Logit adjustment (Menon et al., 2021)
    Subtract ``tau * log(prior_c)`` from class ``c``'s logit (``prior_c`` = its share of the training
    points): no retraining, one number. ``tau`` is chosen on the ref set: the candidate with the highest
    balanced accuracy among those whose accuracy is at most ``max_accuracy_loss`` below ``tau = 0``'s.
    In the exported model it is a change of the output layer's bias.

Calibration under balance
    pyspacer calibrates on the ref set's natural class mix; per-class sigmoids fitted there learn that a
    rare class is rare and undo most of either correction. So with balance on, the ref points are weighted
    in the calibration like the balance weights the classes (``ref_weights``: the loss's class weights
    times ``prior ** -tau``), and the stored probabilities are calibrated for that balanced objective.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

TAU_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def effective_number_weights(counts: Sequence[int] | np.ndarray, *, beta: float = 0.9999,
                             ratio_cap: float | None = None) -> np.ndarray:
    """Per-class loss weights (module docstring); 0 for classes without training points."""
    n = np.asarray(counts, dtype=np.float64)
    present = n > 0
    w = np.zeros_like(n)
    w[present] = (1.0 - beta) / (1.0 - np.power(beta, n[present]))
    if ratio_cap is not None and present.any():
        w[present] = np.minimum(w[present], w[present].min() * float(ratio_cap))
    total = float((n * w).sum())
    return w * (n.sum() / total) if total > 0 else w


def log_prior(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """``log(n_c / N)`` per class (classes without points get the log of half a point, not -inf)."""
    n = np.maximum(np.asarray(counts, dtype=np.float64), 0.5)
    return np.log(n / n.sum())


def ref_weights(y: np.ndarray, class_weights: np.ndarray | None, log_prior_: np.ndarray, tau: float) -> np.ndarray | None:
    """Calibration weights of points with classes ``y``: the class weights times ``exp(-tau * log prior)``,
    mean 1; None when neither applies (unweighted, pyspacer's calibration)."""
    if class_weights is None and not tau:
        return None
    per_class = np.ones(len(log_prior_)) if class_weights is None else np.asarray(class_weights, dtype=np.float64)
    per_class = per_class * np.exp(-tau * log_prior_)
    w = per_class[y]
    return w / w.mean()


@dataclass(frozen=True)
class LogitAdjustment:
    """The chosen ``tau`` and every candidate's ref accuracy and balanced accuracy."""

    tau: float
    candidates: pl.DataFrame  # tau, ref_accuracy, ref_balanced_accuracy, eligible, chosen

    def row(self, tau: float) -> dict:
        return self.candidates.filter(pl.col("tau") == tau).row(0, named=True)


def choose_tau(score: Callable[[float], tuple[float, float]], *, grid: Sequence[float] = TAU_GRID,
               max_accuracy_loss: float = 0.03) -> LogitAdjustment:
    """Score every ``tau`` in ``grid`` (``score(tau) -> (accuracy, balanced accuracy)`` on ref) and pick one."""
    taus = sorted({0.0, *(float(t) for t in grid)})
    scored = np.array([score(t) for t in taus], dtype=np.float64)
    accuracy, balanced = scored[:, 0], scored[:, 1]
    eligible = accuracy >= accuracy[0] - max_accuracy_loss - 1e-12
    best = int(np.flatnonzero(eligible)[np.argmax(balanced[eligible])])  # first of equals: the smallest tau
    table = pl.DataFrame({"tau": taus, "ref_accuracy": accuracy, "ref_balanced_accuracy": balanced,
                          "eligible": eligible, "chosen": np.arange(len(taus)) == best})
    return LogitAdjustment(taus[best], table)
