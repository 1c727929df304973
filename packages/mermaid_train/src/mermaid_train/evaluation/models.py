"""Which model to score: a model reference resolved to a loaded classifier and what is known of its training.

A reference is one of

- ``models:/NAME/VERSION``, ``models:/NAME/latest`` or ``models:/NAME@ALIAS``: a registered model version
  (its training run is the version's ``run_id``);
- ``runs:/RUN_ID/PATH``: an artifact of an MLflow run (``classifier.pkl``, pyspacer's file, or ``model``,
  the sklearn flavor);
- a pyspacer classifier file, a local path or ``s3://`` URI (a ``classifier.pkl`` in a ``TrainingRunner``
  run folder brings the folder's ``train_summary.yaml`` and ``split.parquet`` along).

A reference that does not resolve is a ``TrackingError`` / ``TrainConfigError`` naming what exists
nearby (registered names, versions and aliases, the run's artifacts), raised before anything is
fetched or written. ``ModelRef.key`` is the canonical form (an alias resolved to its version, a file to
its SHA-256): ``compare --on`` reuses an earlier evaluation run of the same key on the same snapshot.
"""

from __future__ import annotations

import difflib
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml
from mermaid_data import storage

from mermaid_train.errors import TrackingError, TrainConfigError

REFERENCE_FORMS = ("a registered model (models:/NAME/VERSION, models:/NAME@ALIAS), a run's artifact "
                   "(runs:/RUN_ID/classifier.pkl, runs:/RUN_ID/model) or a classifier file (a path or s3:// URI)")
CLASSIFIER_FILE = "classifier.pkl"
SPLIT_FILE = "split.parquet"
SUMMARY_FILE = "train_summary.yaml"


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference (module docstring) and what is known of the run that trained it."""

    uri: str  # as given
    kind: str  # "registered" | "run" | "file"
    key: str  # canonical: models:/NAME/VERSION, runs:/RUN_ID/PATH, file:<sha256>
    label: str  # for people: "reef v3", "run reef-20250131-120005", "classifier.pkl"
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
    ref: ModelRef
    classifier: Any  # a fitted classifier with predict_proba and classes_ (pyspacer's CalibratedClassifierCV)
    classes: list[str]  # str(classes_), the class keys "{ba_id}::{gf_id}" for our models


def load_model(uri: str, tracking_uri: str | None = None) -> LoadedModel:
    """Resolve and load ``uri`` (module docstring); ``tracking_uri`` is needed for ``models:/`` and ``runs:/``."""
    text = str(uri).strip()
    if text.startswith("models:/"):
        ref, classifier = _registered(text, _need(tracking_uri, text))
    elif text.startswith("runs:/"):
        ref, classifier = _run_artifact(text, _need(tracking_uri, text))
    elif "://" in text and not text.startswith(("s3://", "file://")):
        raise TrainConfigError(f"unsupported model reference scheme {text.split('://', 1)[0]!r}", where=text,
                               fix=f"pass {REFERENCE_FORMS}")
    else:
        ref, classifier = _file(text.removeprefix("file://"))
    return LoadedModel(ref, classifier, _classes(classifier, text))


def _need(tracking_uri: str | None, text: str) -> str:
    if not tracking_uri:
        raise TrackingError("an MLflow model reference needs a tracking server", where=text,
                            fix="pass --tracking-uri (or set MLFLOW_TRACKING_URI)")
    return tracking_uri


def _classes(classifier: Any, where: str) -> list[str]:
    if not hasattr(classifier, "predict_proba") or not hasattr(classifier, "classes_"):
        raise TrainConfigError(f"the model is a {type(classifier).__name__}, not a fitted classifier with "
                               "predict_proba", where=where, fix=f"pass {REFERENCE_FORMS}")
    return [str(c) for c in classifier.classes_]


# -- registered models ---------------------------------------------------------------------------------


def _registered(text: str, tracking_uri: str) -> tuple[ModelRef, Any]:
    from mlflow import MlflowClient

    body = text[len("models:/"):]
    if "@" in body:
        name, alias, version = *body.rsplit("@", 1), None
    elif "/" in body:
        (name, version), alias = body.rsplit("/", 1), None
    else:
        raise TrainConfigError("a models:/ URI names a version or an alias", where=text,
                               fix=f"pass models:/{body}/VERSION, models:/{body}/latest or models:/{body}@ALIAS")
    if not name or "'" in name or not (version or alias):
        raise TrainConfigError("not a registered model reference", where=text,
                               fix="pass models:/NAME/VERSION or models:/NAME@ALIAS")
    client = MlflowClient(tracking_uri=tracking_uri)
    found = _version(client, name, version, alias, text, tracking_uri)
    run = _run_or_none(client, found.run_id)
    resolved = f"models:/{name}/{found.version}"
    ref = ModelRef(
        uri=text, kind="registered", key=resolved, label=f"{name} v{found.version}", registered_name=name,
        registered_version=str(found.version), alias=alias, run_id=found.run_id,
        run_name=run.info.run_name if run else None, experiment_id=run.info.experiment_id if run else None,
        model_id=_version_model_id(found),
        training_snapshot_id=(run.data.params.get("snapshot_id") if run else None) or None)
    return ref, _logged_classifier(client, resolved, found.run_id, tracking_uri, text)


def _version(client, name: str, version: str | None, alias: str | None, text: str, tracking_uri: str):
    from mlflow.exceptions import MlflowException

    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        if version == "latest":
            versions = _versions(client, name)
            if versions:
                return max(versions, key=lambda v: int(v.version))
        elif version.isdigit():
            return client.get_model_version(name, version)
    except MlflowException:
        pass
    # not found: say what there is
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        names = [m.name for m in client.search_registered_models(max_results=1000)]
        near = difflib.get_close_matches(name, names, n=5, cutoff=0.4) or sorted(names)[:5]
        listed = f"; nearest: {', '.join(near)}" if near else "; the registry has no models"
        raise TrackingError(f"no registered model {name!r}{listed}", where=text,
                            fix="pass a registered model's name (MLflow's UI: Models; "
                                "`MlflowClient().search_registered_models()`)") from None
    versions = sorted(int(v.version) for v in _versions(client, name))
    aliases = ", ".join(f"@{a} = v{v}" for a, v in sorted((model.aliases or {}).items()))
    have = f"versions {', '.join(map(str, versions)) or 'none'}" + (f"; aliases {aliases}" if aliases else "")
    what = f"alias @{alias}" if alias is not None else f"version {version}"
    example = f"models:/{name}/{versions[-1]}" if versions else f"models:/{name}/VERSION"
    raise TrackingError(f"registered model {name!r} has no {what} ({have})", where=text,
                        fix=f"pass one of them, e.g. {example}") from None


def _version_model_id(version) -> str | None:
    """MLflow 3's logged model behind a version: ``model_id``, or the ``models:/m-...`` of its source."""
    if getattr(version, "model_id", None):
        return version.model_id
    source = str(getattr(version, "source", "") or "")
    return source[len("models:/"):] if source.startswith("models:/m-") else None


def _versions(client, name: str) -> list:
    return list(client.search_model_versions(f"name='{name}'"))


def _run_or_none(client, run_id: str | None):
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def _logged_classifier(client, model_uri: str, run_id: str | None, tracking_uri: str, text: str):
    """The sklearn flavor of ``model_uri``; else the training run's ``classifier.pkl`` (the same model)."""
    import mlflow.sklearn

    from mermaid_train.tracking.mlflow import tracking

    try:
        with tracking(tracking_uri):
            return mlflow.sklearn.load_model(model_uri)
    except Exception as exc:  # noqa: BLE001 - not an sklearn flavor (or unreadable): the run's file
        if run_id is None:
            raise TrackingError(f"the model cannot be loaded ({type(exc).__name__}: {str(exc)[:160]})", where=text,
                                fix=f"pass {REFERENCE_FORMS}") from None
    return _run_pickle(client, run_id, CLASSIFIER_FILE, text)


# -- run artifacts ---------------------------------------------------------------------------------------


def _run_artifact(text: str, tracking_uri: str) -> tuple[ModelRef, Any]:
    from mlflow import MlflowClient

    body = text[len("runs:/"):].strip("/")
    run_id, _, path = body.partition("/")
    if not run_id or not path:
        raise TrainConfigError("a runs:/ URI names the run and the artifact", where=text,
                               fix=f"pass runs:/{run_id or 'RUN_ID'}/{CLASSIFIER_FILE} or runs:/{run_id or 'RUN_ID'}/model")
    client = MlflowClient(tracking_uri=tracking_uri)
    run = _run_or_none(client, run_id)
    if run is None:
        raise TrackingError(f"no run {run_id!r} in this tracking store", where=text,
                            fix="pass a run ID of this server (MLflow's UI, or `mlflow runs list --experiment-id ID`) "
                                "and the right --tracking-uri / MLFLOW_TRACKING_URI")
    if path.endswith(".pkl"):
        classifier = _run_pickle(client, run_id, path, text)
    else:
        import mlflow.sklearn

        from mermaid_train.tracking.mlflow import tracking

        _artifact_exists(client, run_id, path, text)
        try:
            with tracking(tracking_uri):
                classifier = mlflow.sklearn.load_model(f"runs:/{run_id}/{path}")
        except Exception as exc:  # noqa: BLE001 - any flavor or format problem
            raise TrackingError(f"the artifact cannot be loaded as an sklearn model ({type(exc).__name__})",
                                where=text, fix=f"pass runs:/{run_id}/{CLASSIFIER_FILE} (pyspacer's file) "
                                "or runs:/ID/model") from None
    ref = ModelRef(uri=text, kind="run", key=f"runs:/{run_id}/{path}", label=f"run {run.info.run_name or run_id}",
                   run_id=run_id, run_name=run.info.run_name, experiment_id=run.info.experiment_id,
                   model_id=_logged_model_id(client, run, path),
                   training_snapshot_id=run.data.params.get("snapshot_id") or None)
    return ref, classifier


def _artifact_exists(client, run_id: str, path: str, text: str) -> None:
    parent = path.rsplit("/", 1)[0] if "/" in path else None
    listed = [a.path for a in client.list_artifacts(run_id, parent)]
    if path.rstrip("/") not in listed:
        names = ", ".join(p.rsplit("/", 1)[-1] for p in listed[:12]) or "none"
        raise TrackingError(f"run {run_id} has no artifact {path!r} (it has: {names})", where=text,
                            fix=f"pass runs:/{run_id}/{CLASSIFIER_FILE} or runs:/{run_id}/model")


def _run_pickle(client, run_id: str, path: str, text: str):
    _artifact_exists(client, run_id, path, text)
    with tempfile.TemporaryDirectory(prefix="mermaid-eval-") as tmp:
        local = client.download_artifacts(run_id, path, tmp)
        return _unpickle(local, text)


def _logged_model_id(client, run, path: str) -> str | None:
    """MLflow 3's logged model of the run named ``path`` (the ``model`` of our runs), if any."""
    try:
        models = client.search_logged_models([run.info.experiment_id],
                                             filter_string=f"source_run_id = '{run.info.run_id}'")
    except Exception:  # noqa: BLE001 - an older server without logged models
        return None
    wanted = "model" if path.endswith(".pkl") else path
    named = [m for m in models if m.name == wanted]
    return named[0].model_id if len(named) == 1 else None


# -- classifier files ---------------------------------------------------------------------------------------


def _file(text: str) -> tuple[ModelRef, Any]:
    fix = f"pass {REFERENCE_FORMS}"
    if text.startswith("s3://"):
        uri = storage.Uri.parse(text)
        if not storage.exists(uri):
            raise TrainConfigError("model file not found", where=text, fix=fix)
        data = storage.read_bytes(uri)
        folder = None
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise TrainConfigError("model file not found" if not path.exists() else "the model path is not a file",
                                   where=text, fix=fix)
        data = path.read_bytes()
        folder = path.resolve().parent if (path.parent / SUMMARY_FILE).is_file() else None
    classifier = _unpickle(text, text)
    snapshot_id = None
    if folder is not None:
        summary = yaml.safe_load((folder / SUMMARY_FILE).read_text()) or {}
        snapshot_id = (summary.get("snapshot") or {}).get("id")
    name = Path(text).name if folder is None else f"{folder.name}/{Path(text).name}"
    return ModelRef(uri=text, kind="file", key=f"file:{hashlib.sha256(data).hexdigest()}", label=name,
                    run_name=folder.name if folder else None, training_snapshot_id=snapshot_id,
                    run_folder=folder), classifier


def _unpickle(location: str, text: str):
    from mermaid_train.model.export import load_classifier

    try:
        return load_classifier(location)
    except Exception as exc:  # noqa: BLE001 - unpickling errors of any kind
        raise TrainConfigError(f"the model file cannot be loaded ({type(exc).__name__}: {str(exc)[:160]})",
                               where=text, fix=f"pass {REFERENCE_FORMS}") from None


# -- the training run's val set -----------------------------------------------------------------------------


def val_annotation_ids(ref: ModelRef, tracking_uri: str | None) -> pl.Series:
    """``annotation_id`` of every point in the model's own val set (its training run's ``split.parquet``)."""
    if ref.run_folder is not None:
        split = pl.read_parquet(ref.run_folder / SPLIT_FILE)
    elif ref.run_id is not None and tracking_uri:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        _artifact_exists(client, ref.run_id, SPLIT_FILE, ref.uri)
        with tempfile.TemporaryDirectory(prefix="mermaid-eval-") as tmp:
            split = pl.read_parquet(client.download_artifacts(ref.run_id, SPLIT_FILE, tmp))
    else:
        raise TrainConfigError("--rows val: the model's training run is unknown (a classifier file outside a run "
                               "folder), so its val set is too", where=ref.uri,
                               fix="pass a models:/ or runs:/ URI, or the classifier.pkl in its run folder, "
                                   "or use --rows all")
    return split.filter(pl.col("split") == "val")["annotation_id"]


__all__ = ["REFERENCE_FORMS", "LoadedModel", "ModelRef", "load_model", "val_annotation_ids"]
