"""Judge models: ``score`` (a model's metrics on a snapshot's rows, unknown classes counted) and ``pipeline``
(``evaluate``: snapshot → model → features → metrics → an evaluation folder and an MLflow evaluation run).
Models load through ``mermaid_train.model.load`` (the one loader ``predict`` uses too)."""

from mermaid_train.evaluation.pipeline import evaluate

__all__ = ["evaluate"]
