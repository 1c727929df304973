"""Any stored model by URI, as one in-memory classifier: ``load_model(uri) -> LoadedModel``.

A model URI is one of

- ``models:/<name>/<version>``, ``models:/<name>/latest`` or ``models:/<name>@<alias>``: a registered
  model version (tracking URI: the option, else ``MLFLOW_TRACKING_URI``, else ``./mlflow.db``);
- ``runs:/<run id>/<path>``: an artifact of a run, either an MLflow model folder (``model``) or a
  pyspacer classifier file (``classifier.pkl``);
- a pyspacer classifier file (a local path or ``s3://``), or a local run folder holding ``classifier.pkl``.

MLflow models logged by mermaid-train load their pyspacer ``classifier.pkl`` artifact, others (models
logged before the python_function with names, too) their sklearn flavor; classifier files load through
pyspacer's ``load_classifier``. A URI that names nothing is a
``ModelError`` that lists the nearest registered names, versions, aliases, artifacts or files. Every
MLflow call is bounded (one retry, the tracking probe first).
"""

from __future__ import annotations

import difflib
import json
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mermaid_train.errors import ModelError
from mermaid_train.labels import ClassLabels

_MODELS = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/]+))/?$")
_RUNS = re.compile(r"^runs:/(?P<run>[0-9a-zA-Z]+)(?:/(?P<path>.*))?$")
FIX_URI = ("pass models:/<name>/<version>, models:/<name>@<alias>, runs:/<run id>/model or a classifier file "
           "(path or s3://)")
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


@dataclass(frozen=True)
class LoadedModel:
    """A classifier ready to predict, and where it came from."""

    classifier: Any  # fitted sklearn classifier with predict_proba and classes_ (pyspacer's CalibratedClassifierCV)
    classes: tuple[str, ...]  # class keys, the columns of predict_proba
    uri: str  # as given
    source: str  # what the URI resolved to (a registered version and its run, an artifact, a file)
    labels: ClassLabels | None = None  # the names logged with the model (classes.json / classes.csv), if any
    run_id: str | None = None
    registered_name: str | None = None
    registered_version: str | None = None

    @property
    def dim(self) -> int | None:
        value = getattr(self.classifier, "n_features_in_", None)
        return int(value) if value is not None else None


def load_model(uri: str, *, tracking_uri: str | None = None) -> LoadedModel:
    """The model that ``uri`` names (module docstring)."""
    text = str(uri).strip()
    if text.startswith("models:/"):
        return _registered(text, tracking_uri)
    if text.startswith("runs:/"):
        return _run_artifact(text, tracking_uri)
    if "://" in text and not text.startswith(("s3://", "file://")):
        raise ModelError(f"unknown model URI scheme {text.split('://', 1)[0]!r}", where=text, fix=FIX_URI)
    return _file(text)


# ---- registered models and run artifacts -------------------------------------------------------------


def _client(tracking_uri: str | None):
    from mlflow import MlflowClient

    from mermaid_train.tracking.mlflow import check_tracking, resolve_tracking_uri

    resolved = resolve_tracking_uri(tracking_uri)
    check_tracking(resolved, "Default")
    return MlflowClient(tracking_uri=resolved), resolved


def _registered(text: str, tracking_uri: str | None) -> LoadedModel:
    from mlflow.exceptions import MlflowException

    from mermaid_train.tracking.mlflow import _env

    match = _MODELS.match(text)
    if match is None:
        raise ModelError("malformed registered-model URI", where=text, fix=FIX_URI)
    name, version, alias = match["name"], match["version"], match["alias"]
    client, resolved = _client(tracking_uri)
    where = f"{text} (tracking URI {resolved})"
    with _env(**HTTP_LIMITS):
        try:
            client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            names = [m.name for m in client.search_registered_models(max_results=1000)]
            raise ModelError(f"no registered model {name!r}{_nearest(name, names, 'models')}", where=where,
                             fix="pick a registered name (the MLflow UI's Models page) or set MLFLOW_TRACKING_URI "
                             "/ --tracking-uri to the store that holds it") from None
        versions = sorted((v for v in client.search_model_versions(f"name='{name}'")), key=lambda v: int(v.version))
        if alias is not None:
            try:
                found = client.get_model_version_by_alias(name, alias)
            except MlflowException:
                aliases = sorted({a for v in versions for a in (v.aliases or ())})
                raise ModelError(f"model {name!r} has no alias {alias!r}{_nearest(alias, aliases, 'aliases')}",
                                 where=where, fix=f"use models:/{name}/<version> or one of its aliases") from None
        elif version == "latest":
            if not versions:
                raise ModelError(f"model {name!r} has no versions", where=where, fix="train one, or pick another model")
            found = versions[-1]
        else:
            found = next((v for v in versions if str(v.version) == version), None)
            if found is None:
                listed = ", ".join(str(v.version) for v in versions[-10:]) or "none"
                raise ModelError(f"model {name!r} has no version {version!r} (versions: {listed})", where=where,
                                 fix=f"use one of its versions, e.g. models:/{name}/latest") from None
        canonical = f"models:/{name}/{found.version}"
        local = _download(canonical, resolved)
        try:
            classifier, labels = _load_local(Path(local), text)
        finally:
            _cleanup(local)
    return LoadedModel(classifier, _classes(classifier), text, f"{canonical} (run {found.run_id})", labels,
                       found.run_id, name, str(found.version))


def _run_artifact(text: str, tracking_uri: str | None) -> LoadedModel:
    from mlflow.exceptions import MlflowException

    from mermaid_train.tracking.mlflow import _env

    match = _RUNS.match(text)
    if match is None:
        raise ModelError("malformed run URI", where=text, fix=FIX_URI)
    run_id, path = match["run"], (match["path"] or "").strip("/")
    client, resolved = _client(tracking_uri)
    where = f"{text} (tracking URI {resolved})"
    with _env(**HTTP_LIMITS):
        try:
            client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise ModelError(f"no run {run_id!r} in this tracking store", where=where,
                             fix="copy the run ID from the MLflow UI or `mermaid-train run`'s output") from None
        parent = path.rsplit("/", 1)[0] if "/" in path else None
        listed = [item.path for item in client.list_artifacts(run_id, parent)]
        if path and path not in listed:
            names = [p.rsplit("/", 1)[-1] for p in listed]
            raise ModelError(f"run {run_id} has no artifact {path!r}{_nearest(path.rsplit('/', 1)[-1], names, 'artifacts')}",
                             where=where, fix=f"use runs:/{run_id}/model (the MLflow model) or "
                             f"runs:/{run_id}/classifier.pkl (pyspacer's file)")
        local = _download(f"runs:/{run_id}/{path}", resolved)
        try:
            classifier, labels = _load_local(Path(local), text)
        finally:
            _cleanup(local)
    return LoadedModel(classifier, _classes(classifier), text, f"runs:/{run_id}/{path}", labels, run_id)


def _download(artifact_uri: str, tracking_uri: str) -> str:
    import mlflow.artifacts

    from mermaid_train.tracking.mlflow import tracking

    folder = tempfile.mkdtemp(prefix="mermaid-model-")
    with tracking(tracking_uri):
        return mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=folder)


def _cleanup(local: str) -> None:
    import shutil

    root = Path(local)
    while root.parent != root and not root.name.startswith("mermaid-model-"):
        root = root.parent
    if root.name.startswith("mermaid-model-"):
        shutil.rmtree(root, ignore_errors=True)


# ---- files and folders -------------------------------------------------------------------------------


def _file(text: str) -> LoadedModel:
    from mermaid_data import storage

    if text.startswith("s3://"):
        location = storage.Uri.parse(text)
        if not storage.exists(location):
            names = [o.relative_key for o in storage.list_prefix(location.parent, recursive=False)]
            raise ModelError(f"no classifier file here{_nearest(location.name, names, 'files')}", where=text,
                             fix=FIX_URI)
        classifier = _load_classifier_file(text)
        return LoadedModel(classifier, _classes(classifier), text, text)
    path = Path(text.removeprefix("file://")).expanduser()
    if not path.exists():
        folder = path.parent
        if not folder.is_dir():
            raise ModelError(f"no such file (the folder {folder} does not exist either)", where=text, fix=FIX_URI)
        names = sorted(p.name for p in folder.iterdir())
        raise ModelError(f"no such file{_nearest(path.name, names, 'files')}", where=text, fix=FIX_URI)
    classifier, labels = _load_local(path, text)
    return LoadedModel(classifier, _classes(classifier), text, str(path.resolve()), labels)


def _load_local(path: Path, uri: str) -> tuple[Any, ClassLabels | None]:
    """A classifier file, an MLflow model folder (its sklearn flavor) or a run folder (``classifier.pkl``)."""
    if path.is_file():
        return _load_classifier_file(str(path), uri), None
    if (path / "MLmodel").is_file():
        import yaml

        flavors = (yaml.safe_load((path / "MLmodel").read_text(encoding="utf-8")) or {}).get("flavors", {})
        if "sklearn" not in flavors:
            raise ModelError(f"this MLflow model has no sklearn flavor ({', '.join(flavors) or 'none'})", where=uri,
                             fix="pass a model logged by mermaid-train (or its classifier.pkl)")
        if (path / "artifacts" / "classifier.pkl").is_file():  # ours: pyspacer's file (skops' import takes seconds)
            classifier = _load_classifier_file(str(path / "artifacts" / "classifier.pkl"), uri)
        else:
            import mlflow.sklearn

            classifier = mlflow.sklearn.load_model(str(path))
        classes_json = path / "artifacts" / "classes.json"
        labels = None
        if classes_json.is_file():
            import polars as pl

            rows = json.loads(classes_json.read_text(encoding="utf-8"))["classes"]
            labels = ClassLabels.from_frame(pl.DataFrame(rows, infer_schema_length=None), _classes(classifier))
        return _check(uri, classifier), labels
    if (path / "classifier.pkl").is_file():  # a run folder (or a downloaded run root)
        classifier = _load_classifier_file(str(path / "classifier.pkl"), uri)
        labels = None
        if (path / "classes.csv").is_file():
            import polars as pl

            labels = ClassLabels.from_frame(pl.read_csv(path / "classes.csv", infer_schema=False), _classes(classifier))
        return classifier, labels
    names = sorted(p.name for p in path.iterdir())
    raise ModelError(f"this folder holds no model (no MLmodel, no classifier.pkl; it has {', '.join(names[:8]) or 'nothing'})",
                     where=uri, fix=FIX_URI)


def _load_classifier_file(location: str, uri: str | None = None):
    from mermaid_train.model.export import load_classifier

    try:
        classifier = load_classifier(location)
    except Exception as exc:  # noqa: BLE001 - unpickling errors of any kind
        raise ModelError(f"cannot load a classifier from this file ({type(exc).__name__}: {exc})",
                         where=uri or location, fix=FIX_URI) from None
    return _check(uri or location, classifier)


def _check(uri: str, classifier):
    """``classifier`` if it is a fitted classifier, else a ModelError."""
    if not hasattr(classifier, "predict_proba") or not hasattr(classifier, "classes_"):
        raise ModelError(f"this is a {type(classifier).__name__}, not a fitted classifier", where=uri, fix=FIX_URI)
    return classifier


def _classes(classifier) -> tuple[str, ...]:
    return tuple(str(c) for c in classifier.classes_)


def _nearest(wanted: str, names: Iterable[str], what: str) -> str:
    names = sorted(set(names))
    if not names:
        return f"; there are no {what}"
    near = difflib.get_close_matches(wanted, names, n=3, cutoff=0.3) or names[:3]
    return f"; nearest {what}: {', '.join(near)}"


__all__ = ["LoadedModel", "load_model"]
