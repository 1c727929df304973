"""mermaid_train: train pyspacer classifiers from lake snapshots, tracked in MLflow.

The seed documentation's API (also importable as ``mermaid_classifier.pyspacer.train``)::

    from mermaid_train import DatasetOptions, MLflowOptions, MLflowTrainingRunner, TrainingOptions, TrainingRunner
"""

from mermaid_train.options import DatasetOptions, MLflowOptions, TrainingOptions
from mermaid_train.results import RunResult
from mermaid_train.runner import MLflowTrainingRunner, TrainingRunner
from mermaid_train.split import Subsample

__all__ = ["DatasetOptions", "MLflowOptions", "MLflowTrainingRunner", "RunResult", "Subsample", "TrainingOptions",
           "TrainingRunner"]
