"""The logged model's python_function (``model/pyfunc.py``), logged the way training logs it into a real
SQLite tracking store and loaded back with ``mlflow.pyfunc.load_model``: names, hand-checked scores,
float32 and float64 input, params, and a served copy that runs without ``mermaid_train``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mermaid_train.labels import TaxonomyNames

from tests.support import tiny_model


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:
    """The tiny model logged with ``tracking.model.log_model``: (model URI, its downloaded folder, tracking URI)."""
    import mlflow
    import mlflow.artifacts
    from mermaid_train.model.export import load_classifier
    from mermaid_train.tracking.mlflow import pip_requirements, tracking, trusted_types
    from mermaid_train.tracking.model import log_model

    root = tmp_path_factory.mktemp("pyfunc")
    model_path, _features = tiny_model.write(root / "tiny")
    classifier = load_classifier(str(model_path))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("pyfunc", artifact_location=(root / "mlartifacts").as_uri())
    with tracking(uri):
        with mlflow.start_run(experiment_id=experiment):
            info = log_model(classifier, model_path, TaxonomyNames.bundled().labels(classifier.classes_), name="model",
                             trusted=trusted_types(classifier), pip_requirements=pip_requirements())
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(root / "saved")))
    return info.model_uri, folder, uri


def _load(logged):
    import mlflow.pyfunc

    _uri, folder, _tracking = logged
    return mlflow.pyfunc.load_model(str(folder))


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def _approx(rows: list[dict]) -> list[dict]:
    return [{k: pytest.approx(v, abs=1e-9) if isinstance(v, float) else v for k, v in row.items()} for row in rows]


def test_hand_checked_rows_with_names(logged) -> None:
    model = _load(logged)
    out = model.predict(tiny_model.X.astype(np.float32), params={"top_k": 2, "min_confidence": 0.5})
    assert list(out.columns[:4]) == ["predicted_class_key", "predicted_name", "confidence", "low_confidence"]
    assert _records(out) == _approx(tiny_model.expected_rows(0.5))
    assert model.metadata.metadata["feature_dim"] == 2


def test_float32_float64_lists_and_frames_agree(logged) -> None:
    """Bug pinned: the signature's float32 tensor spec rejected float64 features (what numpy makes by default)."""
    model = _load(logged)
    x64 = tiny_model.X.astype(np.float64)
    reference = model.predict(x64.astype(np.float32))
    for data in (x64, x64.tolist(), pd.DataFrame(x64, columns=["f0", "f1"]), x64.astype(np.float16), x64.astype(int)):
        assert model.predict(data).equals(reference), type(data)
    assert _records(model.predict(x64[1]))[0]["top1_name"] == "Porites / Massive"  # one vector is one point
    defaults = model.predict(x64)  # top 3 by default, nothing low-confidence without min_confidence
    assert "top3_name" in defaults.columns and "top4_name" not in defaults.columns
    assert not defaults["low_confidence"].any() and defaults["predicted_name"].notna().all()


def test_bad_input_names_the_expected_shape(logged) -> None:
    model = _load(logged)
    with pytest.raises(Exception, match=r"expected feature vectors of shape \[n, 2\], got \[3, 3\]"):
        model.predict(np.zeros((3, 3)))
    with pytest.raises(Exception, match="feature vectors must be numbers"):
        model.predict(np.array([["a", "b"]], dtype=object))
    with pytest.raises(Exception, match=r"min_confidence 1.5 is not a probability: pass a value in \[0, 1\]"):
        model.predict(tiny_model.X, params={"min_confidence": 1.5})


def test_loads_from_the_tracking_store_too(logged) -> None:
    import mlflow.pyfunc
    from mermaid_train.tracking.mlflow import tracking

    uri, _folder, tracking_uri = logged
    with tracking(tracking_uri):
        model = mlflow.pyfunc.load_model(uri)
    assert _records(model.predict(tiny_model.X, params={"top_k": 2}))[2]["top2_name"] == "Porites / Massive"


def test_served_copy_needs_no_mermaid_train(logged) -> None:
    """A serving environment has no mermaid_train: the model's code falls back to the ranking.py logged with it."""
    _uri, folder, _tracking = logged
    script = (
        "import sys, json\n"
        "sys.modules['mermaid_train'] = None  # import mermaid_train now raises ImportError\n"
        "import mlflow.pyfunc\n"
        f"model = mlflow.pyfunc.load_model({str(folder)!r})\n"
        "out = model.predict([[1.0, 0.0], [0.0, 1.0]], params={'top_k': 1})\n"
        "print(json.dumps({'names': out['top1_name'].tolist(), 'scores': out['top1_score'].tolist(),\n"
        "                  'ranking': sys.modules['ranking'].__file__}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, cwd=folder,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["names"] == ["Acropora / Branching", "Porites / Massive"]
    assert result["scores"] == pytest.approx([0.55, 0.60], abs=1e-9)
    assert Path(result["ranking"]).resolve().is_relative_to(folder.resolve())  # the logged copy of ranking.py
