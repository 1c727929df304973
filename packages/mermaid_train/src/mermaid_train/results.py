"""What training and a run produce, as frozen objects (no plain dicts of results)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from spacer.messages import TrainClassifierReturnMsg

from mermaid_train.model.balance import LogitAdjustment
from mermaid_train.model.train import EpochRecord
from mermaid_train.recipe import Recipe

if TYPE_CHECKING:
    from mermaid_train.metrics import ValMetrics
    from mermaid_train.model.load import ModelRef
    from mermaid_train.split import SubsampleResult


@dataclass(frozen=True)
class TrainReport:
    """What ``PackedTrainer`` learns beyond pyspacer's return message (its ``report`` after a call)."""

    val_indices: np.ndarray  # packed rows of the val points, in the order of the val results
    val_proba: np.ndarray  # [n_val, classes] probabilities of the stored model
    classes: list[str]
    epochs: tuple[EpochRecord, ...]
    best_epoch: int
    stopped_early: bool
    hidden_layer_sizes: tuple[int, ...]  # the network trained (empty for LR)
    learning_rate: float
    blas_threads: int
    flops: int  # of the training steps and per-epoch ref passes
    class_weights: np.ndarray | None  # per model class, None when unweighted
    logit_adjustment: LogitAdjustment | None  # the tau search on ref ('auto'), or the fixed tau
    tau: float  # the logit adjustment applied (0 = none)
    ref_accuracy: float  # of the stored (calibrated) model on ref
    ref_balanced_accuracy: float
    calibration_seconds: float


class _PerEpoch:
    """pyspacer's per-epoch lists from ``self.epochs``."""

    epochs: tuple[EpochRecord, ...]

    @property
    def ref_accs(self) -> list[float]:
        return [e.ref_accuracy for e in self.epochs]

    @property
    def epoch_seconds(self) -> list[float]:
        return [e.seconds for e in self.epochs if not math.isnan(e.seconds)]


@dataclass(frozen=True)
class TrainOutcome(_PerEpoch):
    """One training call's result: where the model is, val predictions and the per-epoch record."""

    model_path: Path
    valresult_path: Path
    classes: list[str]  # the model's classes; val_gt / val_est index into it
    val_gt: np.ndarray
    val_est: np.ndarray
    val_scores: np.ndarray  # probabilities [n_val, n_classes] (packed), else the max score [n_val]
    epochs: tuple[EpochRecord, ...]
    accuracy: float
    previous_accuracies: list[float]
    runtime_s: float
    trainer: str
    recipe: Recipe  # with the network resolved (the sizes and rate actually trained)
    val_rows: pl.DataFrame | None = None  # packed rows of the val points, in the order of val_gt
    report: TrainReport | None = None  # packed trainer only
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def best_epoch(self) -> int:
        return self.report.best_epoch if self.report else len(self.epochs) - 1

    @property
    def gflops(self) -> float:
        """Achieved GFLOP/s of the training epochs (MLP on the packed trainer; nan otherwise)."""
        seconds = sum(e.seconds for e in self.epochs)
        if not self.report or not self.report.flops or not seconds:
            return float("nan")
        return self.report.flops / seconds / 1e9


@dataclass(frozen=True)
class RunResult(_PerEpoch):
    """What a run produced: IDs, counts, metrics and where every file is.

    ``TrainingRunner``: ``out_dir``, ``model_path`` and ``files`` are the run folder's. ``MLflowTrainingRunner``
    logs that folder and removes it: the files are then under ``artifact_uri`` (``classifier_uri`` for the
    classifier), ``model_path`` is None and ``files`` empty.
    """

    run_name: str
    snapshot_id: str
    snapshot_created: bool
    manifest: dict
    lake: str
    out_dir: Path
    model_path: Path | None
    counts: dict[str, int]
    classes: list[str]
    dropped_classes: dict[str, int]
    metrics: ValMetrics
    headline: dict[str, float]
    epochs: tuple[EpochRecord, ...]
    best_epoch: int
    previous_accuracies: list[float]
    passes_coralnet_rule: bool | None
    runtime_s: float
    sections: pl.DataFrame
    params: dict[str, Any]
    recipe: Recipe
    recipe_id: str
    files: dict[str, Path] = field(default_factory=dict)
    packed_reused: bool = False
    subsample: SubsampleResult | None = None
    logit_adjustment: LogitAdjustment | None = None
    example_x: np.ndarray | None = None  # a few val feature vectors (the logged model's signature)
    rows_schema: dict[str, str] = field(default_factory=dict)  # the snapshot rows' columns and types
    # filled by MLflowTrainingRunner
    tracking_uri: str | None = None
    experiment_id: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    experiment_url: str | None = None  # the experiment's runs table in MLflow's UI
    model_uri: str | None = None
    registered_model: str | None = None
    registered_version: str | None = None
    classifier_uri: str | None = None
    artifact_uri: str | None = None

    def return_msg(self) -> TrainClassifierReturnMsg:
        return TrainClassifierReturnMsg(acc=float(self.headline["accuracy"]), pc_accs=list(self.previous_accuracies),
                                        ref_accs=list(self.ref_accs), runtime=float(self.runtime_s))


@dataclass(frozen=True)
class EvaluationScores:
    """A model's scores on a set of rows (``evaluation.score``): all rows, and the rows of known classes."""

    metrics: ValMetrics  # every row; classes = the model's, then the unknown ones
    known: ValMetrics | None  # the rows whose class the model knows (None when there are none)
    headline: dict[str, float]
    unknown: pl.DataFrame  # class_key, name, rows: true classes the model does not know
    truth: np.ndarray  # index into metrics.classes, per row
    predicted: np.ndarray  # index into the model's classes (the first of metrics.classes), per row
    confidence: np.ndarray  # the predicted class's probability, per row


@dataclass(frozen=True)
class EvaluationResult:
    """One model scored on one snapshot (``mermaid_train.evaluation.evaluate``): the figures and where they are."""

    name: str
    model: ModelRef
    snapshot_id: str
    manifest: dict
    lake: str
    rows: str  # "all" | "val"
    scores: EvaluationScores
    counts: dict[str, int]  # snapshot_rows, selected_rows, missing_features, scored, known_class, unknown_class
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    rows_schema: dict[str, str] = field(default_factory=dict)
    runtime_s: float = 0.0
    # with MLflow
    tracking_uri: str | None = None
    experiment_id: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    experiment_url: str | None = None

    @property
    def headline(self) -> dict[str, float]:
        return self.scores.headline
