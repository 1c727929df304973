"""mermaid_train: train pyspacer classifiers from lake snapshots, tracked in MLflow.

The seed documentation's API (also importable as ``mermaid_classifier.pyspacer.train``)::

    from mermaid_train import DatasetOptions, MLflowOptions, MLflowTrainingRunner, TrainingOptions, TrainingRunner

The names load on first use (``mermaid-train --help`` does not import scikit-learn, pyspacer or MLflow).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "DatasetOptions": "mermaid_train.options",
    "MLflowOptions": "mermaid_train.options",
    "TrainingOptions": "mermaid_train.options",
    "MLflowTrainingRunner": "mermaid_train.runner",
    "TrainingRunner": "mermaid_train.runner",
    "RunResult": "mermaid_train.results",
    "Subsample": "mermaid_train.split.subsample",
}

__all__ = ["DatasetOptions", "MLflowOptions", "MLflowTrainingRunner", "RunResult", "Subsample", "TrainingOptions",
           "TrainingRunner"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'mermaid_train' has no attribute {name!r}")
