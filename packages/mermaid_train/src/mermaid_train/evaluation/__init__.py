"""Use and judge models: ``models`` (a model reference resolved and loaded), ``score`` (its metrics on a
snapshot's rows, unknown classes counted), ``pipeline`` (``evaluate``: snapshot → model → features →
metrics → an evaluation folder and an MLflow evaluation run)."""

from mermaid_train.evaluation.models import LoadedModel, ModelRef, load_model
from mermaid_train.evaluation.pipeline import evaluate

__all__ = ["LoadedModel", "ModelRef", "evaluate", "load_model"]
