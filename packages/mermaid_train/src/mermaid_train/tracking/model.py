"""The logged MLflow model: one model with two flavors over one skops file.

- ``python_function``: ``model/pyfunc.py`` (models from code, with ``model/ranking.py`` as its code):
  ``mlflow.pyfunc.load_model(uri).predict(features)`` takes float32 or float64 vectors and returns a frame
  of the top-k class keys with BA / GF ids and names and calibrated scores (params ``top_k``,
  ``min_confidence``).
- ``sklearn``: the same ``CalibratedClassifierCV`` in skops format (``artifacts/classifier.skops``), so
  ``mlflow.sklearn.load_model(uri)`` returns the classifier as before.

The python_function loads ``artifacts/classifier.pkl`` (pyspacer's pickle, also logged in the run as
before): loading a python_function runs its code anyway, so skops' safe format would add nothing there
but its import (which enumerates scikit-learn's types: seconds). ``log_model`` takes the
keyword arguments of ``mlflow.sklearn.log_model`` that the runner uses (registration, tags).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mermaid_train.labels import ClassLabels
from mermaid_train.model import ranking

MODEL_CODE = Path(__file__).resolve().parents[1] / "model" / "pyfunc.py"  # not imported here: it sets the model
RANKING_CODE = Path(ranking.__file__).resolve()
CLASSIFIER_ARTIFACT = "classifier.skops"


def signature(top_k: int = ranking.DEFAULT_TOP_K):
    """Outputs (the prediction columns for ``top_k``) and params; no input schema (see ``model/pyfunc.py``)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

    outputs = [ColSpec(DataType.string, "predicted_class_key", required=False),
               ColSpec(DataType.string, "predicted_name", required=False), ColSpec(DataType.double, "confidence"),
               ColSpec(DataType.boolean, "low_confidence")]
    for rank in range(1, top_k + 1):
        outputs += [ColSpec(DataType.string, f"top{rank}_{field}", required=False) for field in ranking.LABEL_FIELDS]
        outputs.append(ColSpec(DataType.double, f"top{rank}_score"))
    params = ParamSchema([ParamSpec("top_k", DataType.long, ranking.DEFAULT_TOP_K),
                          ParamSpec("min_confidence", DataType.double, 0.0)])
    return ModelSignature(inputs=None, outputs=Schema(outputs), params=params)


class _TwoFlavors:
    """A flavor "module" for ``mlflow.models.Model.log``: pyfunc's save, then the sklearn flavor added."""

    __name__ = "mermaid_train.tracking.model"

    @staticmethod
    def save_model(path: str, mlflow_model, *, classifier, classifier_path: str, labels: ClassLabels,
                   trusted: list[str], pip_requirements: list[str], **_: Any) -> None:
        import mlflow.pyfunc
        import sklearn
        import skops.io
        from mlflow.models.model import MLMODEL_FILE_NAME

        with tempfile.TemporaryDirectory(prefix="mermaid-model-") as tmp:
            pickle_path = os.path.join(tmp, "classifier.pkl")  # artifacts keep their file names
            shutil.copyfile(classifier_path, pickle_path)
            skops_path = os.path.join(tmp, CLASSIFIER_ARTIFACT)
            skops.io.dump(classifier, skops_path)
            classes_path = os.path.join(tmp, "classes.json")
            Path(classes_path).write_text(json.dumps({"classes": labels.frame().to_dicts()}, indent=1),
                                          encoding="utf-8")
            mlflow.pyfunc.save_model(
                path, python_model=str(MODEL_CODE), code_paths=[str(RANKING_CODE)],
                artifacts={"classifier": pickle_path, "classifier_skops": skops_path, "classes": classes_path},
                signature=signature(),
                pip_requirements=[*pip_requirements, f"pandas=={_version('pandas')}"],
                mlflow_model=mlflow_model)  # Model.log put the metadata on mlflow_model
        mlflow_model.add_flavor("sklearn", pickled_model=f"artifacts/{CLASSIFIER_ARTIFACT}",
                                sklearn_version=sklearn.__version__, serialization_format="skops", code=None,
                                skops_trusted_types=trusted)
        mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def model_labels(result, classifier) -> ClassLabels:
    """The classifier's classes with names from the run folder's ``classes.csv`` (keys only without one)."""
    import polars as pl

    keys = [str(k) for k in classifier.classes_]
    path = Path(result.out_dir) / "classes.csv"
    frame = pl.read_csv(path, infer_schema=False) if path.is_file() else pl.DataFrame({"class_key": keys})
    return ClassLabels.from_frame(frame, keys)


def log_model(classifier, classifier_path: str | Path, labels: ClassLabels, *, name: str, trusted: list[str],
              pip_requirements: list[str], **kwargs: Any):
    """Log the two-flavor model (module docstring) into the active run; returns MLflow's ``ModelInfo``.

    ``classifier_path`` is ``classifier``'s pyspacer file (the run's ``classifier.pkl``).

    ``kwargs`` go to ``Model.log``: ``registered_model_name``, ``await_registration_for``, ``tags``.
    """
    from mlflow.models import Model

    dim = getattr(classifier, "n_features_in_", None)
    metadata = {"input": f"feature vectors [n, {dim}], float32 or float64 (cast to float32)",
                "feature_dim": dim, "classes": len(labels),
                "output": "top-k class keys with benthic attribute / growth form ids and names, calibrated scores"}
    return Model.log(artifact_path=None, name=name, flavor=_TwoFlavors, flavor_name="python_function",
                     classifier=classifier, classifier_path=str(classifier_path), labels=labels, trusted=trusted, pip_requirements=pip_requirements,
                     metadata=metadata, **kwargs)


__all__ = ["log_model", "model_labels", "signature"]
