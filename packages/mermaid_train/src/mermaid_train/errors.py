"""One root error for training; every subclass names what is wrong, where, and what to do about it.

``MermaidTrainError`` subclasses ``mermaid_data.errors.MermaidDataError`` so the CLIs print
``str(error)`` (one line: ``where: problem. Fix: fix``) for any of them without a stack trace.
"""

from __future__ import annotations

from mermaid_data.errors import MermaidDataError


class MermaidTrainError(MermaidDataError):
    """Root of every error that mermaid_train raises on purpose (``problem``, ``where``, ``fix``)."""


class TrainDataError(MermaidTrainError):
    """The snapshot rows cannot be trained on (fewer than two classes after splitting, empty sets, ...)."""


class FeatureError(MermaidTrainError):
    """A feature file is missing, corrupt, truncated, or lacks points that the annotations name."""


class TrainConfigError(MermaidTrainError):
    """A training option is invalid (ratios, trainer, classifier type, epochs, ...)."""


class TrackingError(MermaidTrainError):
    """The MLflow tracking server or model registry cannot be used (unreachable, bad model name, ...)."""


class LoggingFailed(TrackingError):
    """Logging a trained run to MLflow failed or ran out of time (``tracking.mlflow.log_run``).

    ``run_id`` is the MLflow run it had created (or None), ``marked_failed`` whether that run could be
    marked FAILED; whoever catches it says where the trained model is kept and how to log it later.
    """

    def __init__(self, problem: str, *, where: str, run_id: str | None, marked_failed: bool,
                 fix: str = "once the tracking server answers, train and log the run again") -> None:
        self.run_id = run_id
        self.marked_failed = marked_failed
        super().__init__(problem, where=where, fix=fix)


class ModelError(MermaidTrainError):
    """A model URI names no model (unknown registered name, version, alias, run, artifact or file), or what
    it names is not a classifier."""


class PredictInputError(MermaidTrainError):
    """Input to ``predict`` is unusable: feature files or points that are missing, a bad ``--points`` row."""
