"""Scoring a classifier's predictions on any annotations: ``classification`` (accuracy, balanced accuracy,
MCC, log loss, calibration), ``cover`` (per image and source), ``taxonomy`` (the error split by root
group), ``evaluate`` (all of it as one ``ValMetrics``), ``plots``."""

from mermaid_train.metrics.evaluate import ValMetrics, compute_val_metrics
from mermaid_train.metrics.taxonomy import Taxonomy

__all__ = ["Taxonomy", "ValMetrics", "compute_val_metrics"]
