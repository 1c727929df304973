"""MLflow: where runs go, the pre-flight check of the tracking server, and logging one finished run.

Layout of a logged run (see docs/training.md):

- params: every option (``dataset.*`` = the snapshot's recipe, ``training.*`` = the resolved recipe,
  ``mlflow.*``), the snapshot's lineage (``snapshot.*``: spec files, input versions; ``mermaid_train.lineage``)
  plus ``snapshot_id`` and ``recipe_id`` (the run's identity: the snapshot and every training option);
- metrics: the headline val metrics at step 0; per epoch (step = epoch) ``train_loss``, ``ref_loss``,
  ``ref_accuracy``, ``ref_balanced_accuracy``, ``epoch_seconds``;
- artifacts: the run folder (``mermaid_train.runfolder``);
- the model under ``model`` (``tracking/model.py``): a python_function that returns class names and takes
  float32 or float64, and the sklearn flavor (skops format) over the same file; explicit pip requirements;
  registered as a new version of the model name (the run is named ``<model name>-<date/time>``), the
  version tagged with the snapshot ID and the headline metrics;
- the snapshot as a dataset input (name = snapshot ID, digest = its ``content_sha256``), context training;
- the experiment tagged ``mlflow.experimentKind=custom_model_development``, and its links in the
  "model training" view of MLflow's UI (``ui_urls``): without ``?workflowType=machine_learning`` MLflow 3's
  UI opens an experiment on its GenAI overview.

Every MLflow call while logging is bounded (``bounded``): each HTTP request by MLflow's own settings
(``MLFLOW_HTTP_REQUEST_TIMEOUT``, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, backoff; set only around our calls,
from ``MERMAID_TRACKING_REQUEST_TIMEOUT_S`` / ``MERMAID_TRACKING_RETRIES`` unless the user set them), and
the whole logging by a deadline (``MERMAID_TRACKING_DEADLINE_S``). A failure raises ``LoggingFailed``
(which run, whether it could be marked FAILED, why, in one line); the runner keeps the run folder. Each run
is tagged with its trainer's process (``mermaid.owner``), so ``fail_orphaned_runs`` can mark the RUNNING
runs of trainers that died FAILED.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mermaid_data.progress import Progress, SilentProgress

from mermaid_train.errors import LoggingFailed, TrackingError

if TYPE_CHECKING:
    from mermaid_train.results import RunResult

#: Types inside a calibrated pyspacer classifier that skops does not trust by default (checked at log time).
SKOPS_TRUSTED_TYPES = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # MLflow 3's UI: a machine-learning experiment, not GenAI
#: Version tags: headline metrics copied onto each registered model version.
VERSION_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "top_3_accuracy")
FIX_SERVER = ("start the server (`mlflow server --host 127.0.0.1 --port 5000`), correct MLFLOW_TRACKING_URI, "
              "or unset it to log to ./mlflow.db")


def default_tracking_uri(directory: str | Path | None = None) -> str:
    """``sqlite:///<directory or cwd>/mlflow.db`` (file: stores are refused by MLflow 3)."""
    return f"sqlite:///{(Path(directory) if directory else Path.cwd()).resolve() / 'mlflow.db'}"


def resolve_tracking_uri(explicit: str | None = None) -> str:
    """The option, else ``MLFLOW_TRACKING_URI``, else the SQLite store in the working directory."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def _scheme(uri: str) -> str:
    return uri.split(":", 1)[0].lower() if "://" in uri or uri.startswith(("sqlite:", "databricks")) else ""


def check_tracking(uri: str, experiment: str, *, timeout_s: float | None = None) -> None:
    """Fail fast (seconds) if the tracking store cannot be used; called before any heavy work."""
    from mermaid_train.options import get_train_settings

    timeout = timeout_s if timeout_s is not None else get_train_settings().tracking_timeout_s
    scheme = _scheme(uri)
    if scheme in ("", "file"):
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
            raise TrackingError(
                "file-system tracking stores are refused by MLflow 3", where=uri,
                fix="use a database store such as sqlite:///mlflow.db or an MLflow server URL")
        return
    if scheme == "sqlite":
        path = Path(uri.split("sqlite:///", 1)[-1]) if uri.startswith("sqlite:///") else None
        if path is not None and str(path) not in ("", ":memory:"):
            folder = path.parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TrackingError(f"cannot create the folder of the SQLite store ({exc.strerror})", where=uri,
                                    fix="point MLFLOW_TRACKING_URI at a writable sqlite:/// path") from None
            if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
                raise TrackingError("the SQLite store is not writable", where=uri,
                                    fix="point MLFLOW_TRACKING_URI at a writable sqlite:/// path")
        return
    if scheme in ("http", "https"):
        health = _probe_http(uri, timeout)
        _probe_api(uri, experiment, timeout, health)


def _probe_http(uri: str, timeout: float) -> int:
    """HTTP status of ``GET <uri>/health``; a TrackingError if nothing answers within ``timeout``."""
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read(64)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise TrackingError(f"the tracking server answered HTTP {exc.code} on /health", where=uri,
                                fix=FIX_SERVER) from None
        return int(exc.code)  # 401/403/404: something answers (auth proxy, no /health route); the API decides
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"cannot reach the MLflow tracking server within {timeout:g}s ({reason})", where=uri,
                            fix=FIX_SERVER) from None


@contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


#: Loggers that print retries and warnings on stderr while a server is down (the error says it in one line).
_NOISY_LOGGERS = ("mlflow", "urllib3", "requests")


def _limits(timeout_s: float | None = None, retries: int | None = None) -> dict[str, str]:
    from mermaid_train.options import get_train_settings

    settings = get_train_settings()
    wanted = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout_s or settings.tracking_request_timeout_s))),
              "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(settings.tracking_retries if retries is None else retries),
              "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5"}
    return {k: v for k, v in wanted.items() if k not in os.environ}  # the user's own settings win


@contextmanager
def bounded(timeout_s: float | None = None, retries: int | None = None) -> Iterator[None]:
    """MLflow calls in the block: each HTTP request bounded (module docstring), MLflow's retry and warning
    lines silenced (``--debug`` / ``MERMAID_DEBUG`` keeps them), and no "View run at" lines on stdout."""
    from mermaid_data.cli_base import debug_requested

    quiet = not debug_requested()
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS] if quiet else []
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        with _env(**_limits(timeout_s, retries), MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true"), \
                warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def within(deadline_s: float, fn: Callable[[], Any], what: str, where: str, on_timeout: Callable[[], None] | None = None):
    """``fn()`` on a daemon thread, waited for at most ``deadline_s``; its exception is re-raised here. On
    time-out ``on_timeout`` runs (so the thread can stop at its next step) and ``TrackingError`` is raised."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"mlflow-{what}", daemon=True)
    thread.start()
    thread.join(deadline_s)
    if thread.is_alive():
        if on_timeout is not None:
            on_timeout()
        raise TrackingError(f"{what} did not finish within {deadline_s:g}s (MERMAID_TRACKING_DEADLINE_S)",
                            where=where, fix=FIX_SERVER)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(exc: BaseException) -> str:
    """Why a call failed, short: a connection that was refused or timed out anywhere in the chain (MLflow
    wraps requests' errors in a long ``MlflowException``), else the exception's first line."""
    import requests

    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, requests.exceptions.Timeout):
            return "the server does not answer: the request timed out"
        if isinstance(seen, requests.exceptions.ConnectionError):
            return "the server does not answer: connection refused or reset"
        seen = seen.__cause__ or seen.__context__
    return _first_line(exc)


def owner_tag() -> str:
    """This process, as the ``mermaid.owner`` tag of the runs it logs (pid, host, boot, start time)."""
    from mermaid_data.locks import Owner

    owner = Owner.me("mermaid-train")
    return json.dumps({k: getattr(owner, k) for k in ("pid", "host", "boot_id", "started", "since")}, sort_keys=True)


def fail_orphaned_runs(uri: str, experiment: str | None = None) -> list[str]:
    """Mark FAILED the RUNNING runs whose trainer (tag ``mermaid.owner``) is dead; return their IDs.

    Only runs of processes of this machine can be judged; a live trainer's run is never touched. The
    experiment ``experiment`` (a name) or, without one, every experiment.
    """
    from mermaid_data.locks import Owner
    from mlflow import MlflowClient

    from mermaid_train.leftovers import is_dead

    client = MlflowClient(tracking_uri=uri)
    if experiment is not None:
        found = client.get_experiment_by_name(experiment)
        ids = [found.experiment_id] if found is not None else []
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
    failed: list[str] = []
    if not ids:
        return failed
    for run in client.search_runs(ids, filter_string="attributes.status = 'RUNNING'", max_results=1000):
        record = run.data.tags.get("mermaid.owner")
        if not record:
            continue
        try:
            owner = Owner.from_dict({**json.loads(record), "token": "", "command": "mermaid-train"})
        except (ValueError, TypeError):
            continue
        if is_dead(owner):
            client.set_tag(run.info.run_id, "mermaid.failure",
                           f"its trainer (pid {owner.pid} on {owner.host}) died while logging; the run has no model")
            client.set_terminated(run.info.run_id, status="FAILED")
            failed.append(run.info.run_id)
    return failed


def mark_failed(uri: str, run_id: str, reason: str, *, timeout_s: float = 5.0) -> bool:
    """Best effort, a few seconds at most: mark ``run_id`` FAILED (if it is still RUNNING) with the reason."""
    from mlflow import MlflowClient

    def mark() -> bool:
        client = MlflowClient(tracking_uri=uri)
        if client.get_run(run_id).info.status != "RUNNING":
            return False
        client.set_tag(run_id, "mermaid.failure", reason[:5000])
        client.set_terminated(run_id, status="FAILED")
        return True

    try:
        with bounded(timeout_s, 0):
            return bool(within(timeout_s * 4, mark, "marking the run FAILED", uri))
    except Exception:  # noqa: BLE001 - the server is down: the caller says so
        return False


def _probe_api(uri: str, experiment: str, timeout: float, health: int = 200) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with _env(MLFLOW_HTTP_REQUEST_TIMEOUT=str(max(1, int(timeout))), MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"):
        try:
            MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)
        except MlflowException as exc:
            if health != 200:
                raise TrackingError(f"no MLflow tracking server answers here (GET /health: HTTP {health}; the "
                                    "tracking API refused too)", where=uri, fix=FIX_SERVER) from None
            raise TrackingError(f"the tracking server refused a request ({str(exc).splitlines()[0][:200]})",
                                where=uri, fix=FIX_SERVER + "; check credentials (MLFLOW_TRACKING_TOKEN)") from None
        except Exception as exc:  # noqa: BLE001 - requests' errors, whatever they are
            raise TrackingError(f"the tracking server did not answer ({type(exc).__name__})", where=uri,
                                fix=FIX_SERVER) from None


@contextmanager
def tracking(uri: str) -> Iterator[None]:
    """Point the fluent MLflow API at ``uri`` for the block, then restore the previous setting."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = tracking_utils._tracking_uri
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        tracking_utils._tracking_uri = previous


def _artifact_root(uri: str) -> str | None:
    """For a SQLite store: artifacts beside the database (``<dir>/mlartifacts``), not in ./mlruns."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    return None


def experiment_id(uri: str, name: str) -> str:
    """The experiment's ID (created, or restored if deleted), tagged as a machine-learning experiment."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":  # deleted in the UI: its name is still taken; bring it back
            client.restore_experiment(found.experiment_id)
        if EXPERIMENT_KIND_TAG not in (found.tags or {}):  # an experiment of ours from before, or MLflow's own
            client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return found.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_root(uri),
                                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})


def ui_urls(uri: str, exp_id: str, run_id: str | None = None) -> dict[str, str]:
    """``experiment_url`` (its runs table) and ``run_url`` in MLflow's UI, for an ``http(s)`` tracking URI.

    MLflow 3.17's UI starts in its GenAI view (``#/experiments/<id>`` opens the GenAI overview, whatever
    the experiment's tags); ``?workflowType=machine_learning`` opens the model-training view instead.
    """
    if not uri.startswith(("http://", "https://")):
        return {}
    base = f"{uri.rstrip('/')}/#/experiments/{exp_id}/runs"
    out = {"experiment_url": f"{base}?workflowType=machine_learning"}
    if run_id:
        out["run_url"] = f"{base}/{run_id}?workflowType=machine_learning"
    return out


def pip_requirements() -> list[str]:
    """Exact versions of what loading the model needs."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "scikit-learn", "numpy", "scipy", "skops", "pyspacer")]


def trusted_types(model: Any) -> list[str]:
    """The skops types of ``model`` that need trusting: our known list, plus any other sklearn type found."""
    import skops.io

    found = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    extra = sorted(t for t in found if t.startswith("sklearn.") and t not in SKOPS_TRUSTED_TYPES)
    return [t for t in SKOPS_TRUSTED_TYPES if t in found] + extra


def _schema(columns: dict[str, str]):
    from mlflow.types import ColSpec, DataType, Schema

    kinds = {"String": DataType.string, "Utf8": DataType.string, "Int64": DataType.long, "Int32": DataType.integer,
             "Int16": DataType.integer, "UInt16": DataType.integer, "UInt32": DataType.long, "UInt64": DataType.long,
             "Float64": DataType.double, "Float32": DataType.float, "Boolean": DataType.boolean}
    specs = []
    for name, dtype in columns.items():
        base = dtype.split("(", 1)[0]
        kind = DataType.datetime if base.startswith("Datetime") else kinds.get(base, DataType.string)
        specs.append(ColSpec(kind, name))
    return Schema(specs)


def snapshot_dataset(result: RunResult):
    """The run's snapshot as an MLflow dataset (``dataset_of``)."""
    return dataset_of(result.lake, result.snapshot_id, result.manifest, result.rows_schema)


def dataset_of(lake: str, snapshot_id: str, manifest: dict, columns: dict[str, str]):
    """A snapshot as an MLflow dataset: name = snapshot ID, digest = content SHA-256, source = its rows."""
    from mlflow.data.meta_dataset import MetaDataset

    from mermaid_train.lineage import snapshot_digest

    rows_uri = f"{lake.rstrip('/')}/snapshots/{snapshot_id}/rows.parquet"
    try:
        from mlflow.data.dataset_source_registry import resolve_dataset_source

        with warnings.catch_warnings():  # "can be interpreted in multiple ways": both are the local source
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(rows_uri)
    except Exception:  # noqa: BLE001 - no source type for this URI scheme
        from mlflow.data.http_dataset_source import HTTPDatasetSource

        source = HTTPDatasetSource(url=rows_uri)
    return MetaDataset(source, name=snapshot_id, digest=snapshot_digest(manifest) or None, schema=_schema(columns))


@dataclass
class _LogState:
    """Where logging is (for the progress lines and the error), the run it made, and whether it was given up."""

    progress: Progress
    run_id: str | None = None
    step: str = "the experiment"
    abandoned: bool = False

    def at(self, step: str) -> None:
        if self.abandoned:
            raise TrackingError(f"logging was given up at {self.step}", fix="see the error of the run")
        self.step = step
        self.progress.log(f"log to MLflow: {step}")


def log_run(
    result: RunResult,
    *,
    tracking_uri: str,
    experiment: str,
    model_name: str,
    register: bool = True,
    progress: Progress | None = None,
) -> dict[str, str | None]:
    """Log a finished run (see the module docstring); returns ``RunResult``'s MLflow fields.

    Bounded in time (``bounded`` per request, ``MERMAID_TRACKING_DEADLINE_S`` in all). Any failure raises
    ``LoggingFailed``: the run it created is marked FAILED if the server still answers.
    """
    from mermaid_train.options import get_train_settings

    progress = progress or SilentProgress()
    deadline = get_train_settings().tracking_deadline_s
    state = _LogState(progress)
    # no `uv export` of this workspace into the model (slow; the pip requirements are explicit), and no
    # "cannot resolve pip's version" warning (the venv has no pip; the model does not need it)
    env_logger = logging.getLogger("mlflow.utils.environment")
    level = env_logger.level
    env_logger.setLevel(logging.ERROR)
    try:
        with progress.task(f"log to MLflow ({tracking_uri})"), tracking(tracking_uri), bounded(), \
                _env(MLFLOW_UV_AUTO_DETECT="false", MLFLOW_LOG_UV_FILES="false",
                     MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true"):
            return within(deadline, lambda: _log(result, tracking_uri, experiment, model_name, register, state),
                          "logging to MLflow", tracking_uri, on_timeout=lambda: setattr(state, "abandoned", True))
    except Exception as exc:  # MLflow, requests, our deadline: one line, the run marked FAILED
        state.abandoned = True
        reason = exc.problem if isinstance(exc, TrackingError) else _reason(exc)
        marked = state.run_id is not None and mark_failed(tracking_uri, state.run_id, f"logging failed: {reason}")
        run = "" if state.run_id is None else (
            f"; run {state.run_id} is marked FAILED" if marked else
            f"; run {state.run_id} could not be marked FAILED (the server does not answer)")
        raise LoggingFailed(f"logging to MLflow failed at {state.step} ({reason}){run}", where=tracking_uri,
                            run_id=state.run_id, marked_failed=marked) from exc
    finally:
        env_logger.setLevel(level)


def _log(result: RunResult, uri: str, experiment: str, model_name: str, register: bool,
         state: _LogState | None = None) -> dict[str, str | None]:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from mermaid_train.model.export import load_classifier
    from mermaid_train.tracking.model import log_model, model_labels

    state = state or _LogState(SilentProgress())
    client = MlflowClient(tracking_uri=uri)
    exp_id = experiment_id(uri, experiment)
    tags = {
        "mermaid.owner": owner_tag(),
        "mermaid.snapshot_id": result.snapshot_id,
        "mermaid.lake": result.lake,
        "mermaid.trainer": str(result.params.get("training.trainer", "")),
        "mermaid.preset": result.recipe.preset,
        "mermaid.recipe_id": result.recipe_id,
        "mermaid.model_name": model_name,
        "mermaid.run_kind": "training",
        "mlflow.note.content": _note(result),
    }
    state.at("the run")
    run = client.create_run(exp_id, run_name=result.run_name, tags=tags)
    run_id = state.run_id = run.info.run_id
    status = "FAILED"
    try:
        state.at("params and metrics")
        params = {**{k: _param(v) for k, v in result.params.items()}, "snapshot_id": result.snapshot_id,
                  "snapshot_content_sha256": result.manifest.get("content_sha256", ""),
                  "snapshot_rows": str(result.manifest.get("row_count", "")), "lake": result.lake,
                  "model_name": model_name, "recipe_id": result.recipe_id}
        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):
            client.log_batch(run_id, params=items[i:i + 100])
        now = _now_ms()
        metrics = [Metric(_metric_key(k), float(v), now, 0) for k, v in result.headline.items() if not math.isnan(v)]
        for name, count in result.counts.items():
            metrics.append(Metric(f"{name}_annotations", float(count), now, 0))
        metrics.append(Metric("classes", float(len(result.classes)), now, 0))
        metrics.append(Metric("dropped_classes", float(len(result.dropped_classes)), now, 0))
        if result.passes_coralnet_rule is not None:
            metrics.append(Metric("passes_coralnet_rule", float(result.passes_coralnet_rule), now, 0))
        for record in result.epochs:
            for key, value in (("train_loss", record.train_loss), ("ref_loss", record.ref_loss),
                               ("ref_accuracy", record.ref_accuracy),
                               ("ref_balanced_accuracy", record.ref_balanced_accuracy),
                               ("epoch_seconds", record.seconds)):
                if not math.isnan(value):
                    metrics.append(Metric(key, float(value), now, record.epoch))
        for section in result.sections.iter_rows(named=True):
            metrics.append(Metric(f"section_{section['section']}_seconds", float(section["seconds"]), now, 0))
            metrics.append(Metric(f"section_{section['section']}_peak_rss_mb", float(section["peak_rss_mb"]), now, 0))
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i:i + 1000])

        with mlflow.start_run(run_id=run_id):
            mlflow.log_input(snapshot_dataset(result), context="training",
                             tags={"rows": str(result.manifest.get("row_count", ""))})
            state.at("artifacts")
            mlflow.log_artifacts(str(result.out_dir))
            state.at("the model")
            model = load_classifier(str(result.files["classifier.pkl"]))
            info = log_model(  # python_function (names, float32/float64) + sklearn flavors: tracking/model.py
                model,
                result.files["classifier.pkl"],
                model_labels(result, model),
                name="model",
                trusted=trusted_types(model),
                pip_requirements=pip_requirements(),
                registered_model_name=model_name if register else None,
                await_registration_for=60,
                tags={"snapshot_id": result.snapshot_id},
            )
            logged = {"classifier_uri": mlflow.get_artifact_uri("classifier.pkl"),
                      "artifact_uri": mlflow.get_artifact_uri(), "model_uri": info.model_uri}
        if register:
            state.at("the registry")
            version = str(info.registered_model_version)
            for key, value in version_tags(result).items():
                client.set_model_version_tag(model_name, version, key, value)
            logged.update(registered_model=model_name, registered_version=version,
                          model_uri=f"models:/{model_name}/{version}")
        state.at("the run's status")
        status = "FINISHED"
    finally:
        if status == "FINISHED":  # on failure, log_run marks it FAILED (bounded: the server may be gone)
            client.set_terminated(run_id, status=status)
    logged.update(tracking_uri=uri, experiment_id=exp_id, run_id=run_id, **ui_urls(uri, exp_id, run_id))
    return logged


def version_tags(result: RunResult) -> dict[str, str]:
    """A registered model version's tags: what it was trained on, by which run, and how well it did on val."""
    from mermaid_train.lineage import snapshot_digest

    tags = {"snapshot_id": result.snapshot_id, "snapshot_digest": snapshot_digest(result.manifest),
            "recipe_id": result.recipe_id, "run_name": result.run_name}
    name = result.manifest.get("name")
    if name:
        tags["snapshot_name"] = str(name)
    for key in VERSION_METRICS:
        value = result.headline.get(key)
        if value is not None and not math.isnan(value):
            tags[key] = f"{value:.4f}"
    tags["val_points"] = str(result.counts.get("val", ""))
    return tags


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _metric_key(name: str) -> str:
    return name.replace("@", "_at_")


def _param(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 6000 else text[:5990] + "…"


def _note(result: RunResult) -> str:
    h = result.headline
    return (f"Snapshot `{result.snapshot_id}` ({result.manifest.get('row_count', 0):,} rows, "
            f"{len(result.classes)} classes): val accuracy {h['accuracy']:.3f}, balanced accuracy "
            f"{h['balanced_accuracy']:.3f}, macro F1 {h['macro_f1']:.3f}.")


__all__ = ["SKOPS_TRUSTED_TYPES", "LoggingFailed", "bounded", "check_tracking", "dataset_of", "default_tracking_uri",
           "experiment_id", "fail_orphaned_runs", "log_run", "mark_failed", "pip_requirements", "resolve_tracking_uri",
           "snapshot_dataset", "tracking", "trusted_types", "ui_urls", "version_tags", "within"]
