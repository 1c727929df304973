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
MLflow call is bounded (``tracking.mlflow.bounded``; the tracking probe first).

``LoadedModel.ref`` (a ``ModelRef``) says what the model is and what is known of its training: the
registered name and version, the training run (ID, name, experiment), MLflow 3's logged model, the
snapshot it was trained on and, for a file in a ``TrainingRunner`` folder, that folder. ``ModelRef.key``
is the canonical form (an alias or ``latest`` resolved to its version, a file to its SHA-256):
``compare --on`` reuses an earlier evaluation run of the same key on the same snapshot. ``evaluate``,
``compare --on`` and ``predict`` all load through here.
"""

from __future__ import annotations

import difflib
import hashlib
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
CLASSIFIER_FILE = "classifier.pkl"
SUMMARY_FILE = "train_summary.yaml"  # a TrainingRunner folder's summary (its snapshot ID)


@dataclass(frozen=True)
class ModelRef:
    """What a model URI resolved to, and what is known of the run that trained the model (module docstring)."""

    uri: str  # as given
    kind: str  # "registered" | "run" | "file"
    key: str  # canonical: models:/NAME/VERSION, runs:/RUN_ID/PATH, file:<sha256>
    label: str  # for people: "reef v3", "run reef-20250131-120005", "classifier.pkl"
    source: str  # what the URI resolved to, for messages: "models:/reef/3 (run 1a2b...)", a path
    registered_name: str | None = None
    registered_version: str | None = None
    alias: str | None = None
    run_id: str | None = None  # the training run (MLflow)
    run_name: str | None = None
    experiment_id: str | None = None
    model_id: str | None = None  # MLflow 3's logged model
    training_snapshot_id: str | None = None
    run_folder: Path | None = None  # a local TrainingRunner folder holding the classifier file

    def params(self) -> dict[str, str]:
        """The reference as MLflow params of an evaluation run."""
        values = {"model.uri": self.uri, "model.key": self.key, "model.kind": self.kind,
                  "model.registered_name": self.registered_name, "model.registered_version": self.registered_version,
                  "model.alias": self.alias, "model.source_run_id": self.run_id, "model.source_run_name": self.run_name,
                  "model.training_snapshot_id": self.training_snapshot_id,
                  "model.run_folder": None if self.run_folder is None else str(self.run_folder)}
        return {k: "" if v is None else str(v) for k, v in values.items()}


@dataclass(frozen=True)
class LoadedModel:
    """A classifier ready to predict, and where it came from."""

    classifier: Any  # fitted sklearn classifier with predict_proba and classes_ (pyspacer's CalibratedClassifierCV)
    classes: tuple[str, ...]  # class keys, the columns of predict_proba
    ref: ModelRef
    labels: ClassLabels | None = None  # the names logged with the model (classes.json / classes.csv), if any

    @property
    def uri(self) -> str:
        return self.ref.uri

    @property
    def source(self) -> str:
        return self.ref.source

    @property
    def run_id(self) -> str | None:
        return self.ref.run_id

    @property
    def registered_name(self) -> str | None:
        return self.ref.registered_name

    @property
    def registered_version(self) -> str | None:
        return self.ref.registered_version

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

    from mermaid_train.tracking.mlflow import bounded

    match = _MODELS.match(text)
    if match is None:
        raise ModelError("malformed registered-model URI", where=text, fix=FIX_URI)
    name, version, alias = match["name"], match["version"], match["alias"]
    client, resolved = _client(tracking_uri)
    where = f"{text} (tracking URI {resolved})"
    with bounded():
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
        run = _run_or_none(client, found.run_id)
        local = _download(canonical, resolved)
        try:
            classifier, labels = _load_local(Path(local), text)
        finally:
            _cleanup(local)
    ref = ModelRef(
        uri=text, kind="registered", key=canonical, label=f"{name} v{found.version}",
        source=f"{canonical} (run {found.run_id})", registered_name=name, registered_version=str(found.version),
        alias=alias, run_id=found.run_id, run_name=run.info.run_name if run else None,
        experiment_id=run.info.experiment_id if run else None, model_id=_version_model_id(found),
        training_snapshot_id=(run.data.params.get("snapshot_id") if run else None) or None)
    return LoadedModel(classifier, _classes(classifier), ref, labels)


def _run_artifact(text: str, tracking_uri: str | None) -> LoadedModel:
    from mlflow.exceptions import MlflowException

    from mermaid_train.tracking.mlflow import bounded

    match = _RUNS.match(text)
    if match is None:
        raise ModelError("malformed run URI", where=text, fix=FIX_URI)
    run_id, path = match["run"], (match["path"] or "").strip("/")
    client, resolved = _client(tracking_uri)
    where = f"{text} (tracking URI {resolved})"
    with bounded():
        try:
            run = client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise ModelError(f"no run {run_id!r} in this tracking store", where=where,
                             fix="copy the run ID from the MLflow UI or `mermaid-train run`'s output") from None
        logged = _logged_models(client, run)  # MLflow 3 keeps a run's models outside its artifacts
        parent = path.rsplit("/", 1)[0] if "/" in path else None
        listed = [item.path for item in client.list_artifacts(run_id, parent)]
        if path in logged:
            source = f"models:/{logged[path]}"
        elif not path or path in listed:
            source = f"runs:/{run_id}/{path}"
        else:
            names = [p.rsplit("/", 1)[-1] for p in listed] + ([] if parent else list(logged))
            raise ModelError(f"run {run_id} has no artifact {path!r}{_nearest(path.rsplit('/', 1)[-1], names, 'artifacts')}",
                             where=where, fix=f"use runs:/{run_id}/model (the MLflow model) or "
                             f"runs:/{run_id}/classifier.pkl (pyspacer's file)")
        local = _download(source, resolved)
        try:
            classifier, labels = _load_local(Path(local), text)
        finally:
            _cleanup(local)
        model_id = logged[path] if path in logged else logged.get("model")  # a file of ours: the run's "model"
    key = f"runs:/{run_id}/{path}"
    ref = ModelRef(uri=text, kind="run", key=key, label=f"run {run.info.run_name or run_id}", source=key,
                   run_id=run_id, run_name=run.info.run_name, experiment_id=run.info.experiment_id,
                   model_id=model_id, training_snapshot_id=run.data.params.get("snapshot_id") or None)
    return LoadedModel(classifier, _classes(classifier), ref, labels)


def _run_or_none(client, run_id: str | None):
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def _version_model_id(version) -> str | None:
    """MLflow 3's logged model behind a version: ``model_id``, or the ``models:/m-...`` of its source."""
    if getattr(version, "model_id", None):
        return version.model_id
    source = str(getattr(version, "source", "") or "")
    return source[len("models:/"):] if source.startswith("models:/m-") else None


def _logged_models(client, run) -> dict[str, str]:
    """MLflow 3's logged models of ``run`` by name (``model`` for our runs), each name that is unique."""
    try:
        models = client.search_logged_models([run.info.experiment_id],
                                             filter_string=f"source_run_id = '{run.info.run_id}'")
    except Exception:  # noqa: BLE001 - an older server without logged models
        return {}
    names = [m.name for m in models]
    return {m.name: m.model_id for m in models if names.count(m.name) == 1}


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
        ref = ModelRef(uri=text, kind="file", key=f"file:{hashlib.sha256(storage.read_bytes(location)).hexdigest()}",
                       label=location.name, source=text)
        return LoadedModel(classifier, _classes(classifier), ref)
    path = Path(text.removeprefix("file://")).expanduser()
    if not path.exists():
        folder = path.parent
        if not folder.is_dir():
            raise ModelError(f"no such file (the folder {folder} does not exist either)", where=text, fix=FIX_URI)
        names = sorted(p.name for p in folder.iterdir())
        raise ModelError(f"no such file{_nearest(path.name, names, 'files')}", where=text, fix=FIX_URI)
    classifier, labels = _load_local(path, text)
    return LoadedModel(classifier, _classes(classifier), _file_ref(path, text), labels)


def _file_ref(path: Path, text: str) -> ModelRef:
    """A local model's reference: a classifier file (its run folder, if it is in one) or a folder."""
    import yaml

    path = path.resolve()
    folder = path if path.is_dir() else path.parent
    is_run = (folder / SUMMARY_FILE).is_file() and (folder / CLASSIFIER_FILE).is_file() and \
        (path.is_dir() or path.name == CLASSIFIER_FILE)
    hashed = folder / CLASSIFIER_FILE if path.is_dir() and (folder / CLASSIFIER_FILE).is_file() else path
    key = f"file:{hashlib.sha256(hashed.read_bytes()).hexdigest()}" if hashed.is_file() else f"file:{path}"
    snapshot_id = None
    if is_run:
        summary = yaml.safe_load((folder / SUMMARY_FILE).read_text(encoding="utf-8")) or {}
        snapshot_id = (summary.get("snapshot") or {}).get("id")
    label = f"{folder.name}/{CLASSIFIER_FILE}" if is_run else path.name
    return ModelRef(uri=text, kind="file", key=key, label=label, source=str(path),
                    run_name=folder.name if is_run else None, training_snapshot_id=snapshot_id,
                    run_folder=folder if is_run else None)


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
    if (path / CLASSIFIER_FILE).is_file():  # a run folder (or a downloaded run root)
        classifier = _load_classifier_file(str(path / CLASSIFIER_FILE), uri)
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


__all__ = ["CLASSIFIER_FILE", "FIX_URI", "LoadedModel", "ModelRef", "load_model"]
