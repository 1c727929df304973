"""Thin re-export of ``mermaid_train`` under the seed documentation's import path.

    from mermaid_classifier.pyspacer.train import (
        DatasetOptions, MLflowOptions, MLflowTrainingRunner, TrainingOptions, TrainingRunner)
"""

from mermaid_train.options import DatasetOptions, MLflowOptions, TrainingOptions
from mermaid_train.runner import MLflowTrainingRunner, TrainingRunner

__all__ = ["DatasetOptions", "MLflowOptions", "MLflowTrainingRunner", "TrainingOptions", "TrainingRunner"]
