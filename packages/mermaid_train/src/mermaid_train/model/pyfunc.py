"""The logged model's python_function: feature vectors in, classes with names and calibrated scores out.

MLflow logs this file as the model's code ("models from code") with ``ranking.py`` beside it, and runs it
when the model is loaded (``mlflow.pyfunc.load_model("models:/<name>/<version>")``); it needs numpy,
pandas, scikit-learn and MLflow, not ``mermaid_train``. ``tracking/model.py`` logs it.

``predict(features, params={"top_k": 3, "min_confidence": 0.5})``:

- ``features``: ``[n, dim]`` float32 or float64 (a numpy array, a list of lists or a pandas frame; any
  real dtype is cast to float32, what the model was trained on). The model declares no input schema:
  MLflow's tensor schemas accept exactly one dtype, and its column schemas would mean 1,280 columns
  converted one by one (about 10x slower than the model itself); the width is checked here instead.
- returns a pandas frame, one row per point, with the columns of ``ranking.prediction_columns``.

Artifacts: ``classifier`` (pyspacer's ``classifier.pkl``: loading a python_function runs this code anyway,
so a pickle costs no safety here, and skops' import would take seconds), ``classifier_skops`` (the same
classifier for the model's sklearn flavor) and ``classes`` (``classes.json``: per class key the BA / GF ids
and names).
"""

from __future__ import annotations

import json

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import set_model

try:
    from mermaid_train.model import ranking
except ImportError:  # served without mermaid_train: MLflow put the logged ranking.py on sys.path
    import ranking  # type: ignore[no-redef]


class ClassifierModel(mlflow.pyfunc.PythonModel):
    """A pyspacer classifier whose predictions carry class names (module docstring)."""

    def load_context(self, context) -> None:
        import pickle

        with open(context.artifacts["classifier"], "rb") as handle:
            self.classifier = pickle.load(handle)  # our own artifact (module docstring)
        with open(context.artifacts["classes"], encoding="utf-8") as handle:
            classes = json.load(handle)["classes"]
        keys = [str(k) for k in self.classifier.classes_]
        by_key = {c["class_key"]: c for c in classes}
        rows = [{**by_key.get(k, {}), "class_key": k} for k in keys]
        self.labels = {field: np.asarray([r.get(field) for r in rows], dtype=object) for field in ranking.LABEL_FIELDS}
        self.labels["name"] = np.asarray([r.get("name") or r["class_key"] for r in rows], dtype=object)
        self.dim = getattr(self.classifier, "n_features_in_", None)

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        params = params or {}
        x = ranking.as_features(model_input, self.dim)
        proba = ranking.predict_proba(self.classifier, x)
        columns = ranking.prediction_columns(proba, self.labels, k=int(params.get("top_k") or ranking.DEFAULT_TOP_K),
                                             min_confidence=params.get("min_confidence") or None)
        return pd.DataFrame(columns)


set_model(ClassifierModel())
