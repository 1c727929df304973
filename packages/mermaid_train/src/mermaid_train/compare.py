"""``mermaid-train compare``: runs side by side, or models side by side on one snapshot.

``compare_runs``: training runs — snapshot IDs (with names), the recipe options that differ (the
snapshot's recipe as the lineage params record it: spec files, their hashes, growth forms, limits), headline
metrics, per-label F1 (class names beside keys). A run is an MLflow run ID (read with ``MlflowClient``
from the tracking URI) or a local run folder written by ``TrainingRunner`` (``./runs/<run name>``,
holding ``train_summary.yaml``).

``compare_on``: models (any reference ``evaluate`` takes) scored on ONE snapshot — each evaluated, or an
earlier evaluation run of the same model on the same snapshot reused — side by side, with which is better
by CoralNet's rule (accuracy at least 1.01 times the other's) and by balanced accuracy.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import yaml

from mermaid_train.errors import TrackingError, TrainConfigError
from mermaid_train.runner import CORALNET_IMPROVEMENT  # CoralNet's rule, one definition

if TYPE_CHECKING:
    from mermaid_data.progress import Progress

    from mermaid_train.results import EvaluationResult

HEADLINE = (
    "accuracy", "balanced_accuracy", "macro_f1", "macro_precision", "macro_recall", "mcc", "log_loss",
    "error_same_root_share", "top_3_accuracy",
    "top_5_accuracy", "ece", "cover_mean_abs_bias_pp", "cover_rmse_pp", "source_accuracy_min",
    "source_accuracy_median", "source_accuracy_max", "final_ref_accuracy", "best_epoch", "epochs_run",
    "logit_adjustment_tau", "val_points", "val_classes", "train_runtime_s", "train_gflops",
)
ALWAYS_SHOWN = ("training.epochs", "training.trainer", "training.clf_type", "training.split",
                "training.seed", "training.preset", "dataset.ref_val_ratios")


@dataclass
class RunView:
    ref: str
    name: str
    snapshot_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    per_label: pl.DataFrame | None
    registered: str = ""  # "name vN" of the model version the run registered

    @property
    def snapshot(self) -> str:
        """The snapshot ID with its name beside it."""
        name = self.params.get("snapshot.name", "")
        return f"{self.snapshot_id} ({name})" if name else self.snapshot_id


def load_run(ref: str, tracking_uri: str | None = None) -> RunView:
    """A run by local folder or MLflow run ID."""
    folder = Path(ref)
    if (folder / "train_summary.yaml").is_file():
        return _local(folder)
    return _mlflow(ref, tracking_uri)


def _local(folder: Path) -> RunView:
    summary = yaml.safe_load((folder / "train_summary.yaml").read_text())
    params = {k: "" if v is None else str(v) for k, v in (summary.get("options") or {}).items()}
    params["snapshot_id"] = summary["snapshot"]["id"]
    per_label_path = folder / "metrics" / "per_label.csv"
    per_label = pl.read_csv(per_label_path) if per_label_path.is_file() else None
    return RunView(str(folder), summary.get("run_name", folder.name), summary["snapshot"]["id"], params,
                   {k: float(v) for k, v in (summary.get("metrics") or {}).items()}, per_label)


def _mlflow(run_id: str, tracking_uri: str | None) -> RunView:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from mermaid_train.tracking.mlflow import check_tracking, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking(uri, "Default")
    client = MlflowClient(tracking_uri=uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise TrackingError(f"no run {run_id!r} in this tracking store", where=uri,
                            fix="pass MLflow run IDs (`mlflow runs list --experiment-id ID`) or local run folders, "
                            "and the right MLFLOW_TRACKING_URI") from None
    per_label = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "metrics/per_label.csv", tmp)
            per_label = pl.read_csv(path)
        except Exception:  # noqa: BLE001 - a run logged by something else: no per-label table
            per_label = None
    params = dict(run.data.params)
    try:
        versions = client.search_model_versions(f"run_id = '{run_id}'")
    except Exception:  # noqa: BLE001 - a registry that cannot filter by run: no name shown
        versions = []
    registered = ", ".join(f"{v.name} v{v.version}" for v in versions)
    return RunView(run_id, run.info.run_name or run_id, params.get("snapshot_id", ""), params,
                   {k: float(v) for k, v in run.data.metrics.items()}, per_label, registered)


def compare_runs(refs: list[str], tracking_uri: str | None = None, *, top: int = 20) -> dict:
    """``{"runs", "overview", "identical_params", "f1"}``: tables ready to print."""
    runs = [load_run(r, tracking_uri) for r in refs]
    columns = [f"{i + 1}: {r.name}" for i, r in enumerate(runs)]
    rows: list[list[str]] = [["run", *[r.ref for r in runs]], ["snapshot_id", *[r.snapshot for r in runs]]]
    if any(r.registered for r in runs):
        rows.append(["registered model", *[r.registered or "-" for r in runs]])
    keys = sorted(set().union(*(r.params for r in runs)) - {"snapshot_id", "snapshot.name"})
    identical = 0
    for key in keys:
        values = [r.params.get(key, "") for r in runs]
        if key in ALWAYS_SHOWN or len(set(values)) > 1:
            rows.append([key, *values])
        else:
            identical += 1
    for key in HEADLINE:
        values = [r.metrics.get(key) for r in runs]
        if any(v is not None for v in values):
            rows.append([key, *("" if v is None else _fmt(v) for v in values)])
    overview = pl.DataFrame({"field": [r[0] for r in rows],
                             **{c: [r[i + 1] for r in rows] for i, c in enumerate(columns)}})
    return {"runs": runs, "overview": overview, "identical_params": identical, "f1": per_label_f1(runs, top=top)}


def per_label_f1(runs: list, *, top: int = 20) -> pl.DataFrame:
    """F1 per class in each run and the spread (last - first for two runs, else max - min), largest first.

    ``runs`` are ``RunView``s or ``EvaluationView``s (anything with a ``per_label`` table); each class's
    name is taken from the first table that has the class.
    """
    tables = []
    for i, run in enumerate(runs):
        if run.per_label is None:
            continue
        tables.append(run.per_label.select("class_key", pl.col("name").cast(pl.String),
                                           pl.col("f1").alias(f"f1_{i + 1}"),
                                           pl.col("support").alias(f"support_{i + 1}")))
    if not tables:
        return pl.DataFrame()
    merged = tables[0]
    for t in tables[1:]:
        merged = (merged.join(t.rename({"name": "__name"}), on="class_key", how="full", coalesce=True)
                  .with_columns(pl.coalesce("name", "__name").alias("name")).drop("__name"))
    f1_cols = [c for c in merged.columns if c.startswith("f1_")]
    if len(f1_cols) == 2:
        delta = (pl.col(f1_cols[1]).fill_null(0) - pl.col(f1_cols[0]).fill_null(0)).alias("delta")
    else:
        delta = (pl.max_horizontal(f1_cols) - pl.min_horizontal(f1_cols)).alias("delta")
    return (merged.with_columns(delta).sort(pl.col("delta").abs(), "class_key", descending=[True, False])
            .head(top))


def _fmt(value: float) -> str:
    if float(value).is_integer() and abs(value) >= 10:
        return f"{int(value):,}"
    return f"{value:.4f}"


# -- models on one snapshot --------------------------------------------------------------------------------

#: ``compare --on``'s rows: (metric key, label). Accuracy over all rows is the one both rules use.
EVALUATION_ROWS = (
    ("accuracy", "accuracy (all rows)"),
    ("accuracy_known_classes", "accuracy (rows of classes the model knows)"),
    ("balanced_accuracy", "balanced accuracy (all classes)"),
    ("balanced_accuracy_known_classes", "balanced accuracy (classes the model knows)"),
    ("macro_f1", "macro F1"), ("mcc", "MCC"), ("log_loss", "log loss (known classes)"),
    ("top_3_accuracy", "top-3 accuracy"), ("top_5_accuracy", "top-5 accuracy"), ("ece", "expected calibration error"),
    ("cover_mean_abs_bias_pp", "cover mean |bias| (pp)"), ("cover_rmse_pp", "cover RMSE (pp)"),
    ("source_accuracy_min", "per-source accuracy min"), ("source_accuracy_median", "per-source accuracy median"),
    ("error_same_root_share", "errors within the same root group"), ("eval_points", "points scored"),
    ("unknown_class_points", "points of classes the model does not know"),
    ("unknown_classes", "classes the model does not know"), ("model_classes", "model classes"),
)
#: ``EVALUATION_ROWS`` that count points or classes: printed as whole numbers (0, not 0.0000).
COUNT_ROWS = frozenset({"eval_points", "unknown_class_points", "unknown_classes", "model_classes"})


@dataclass(frozen=True)
class EvaluationView:
    """One model's evaluation on the compared snapshot, new or reused."""

    ref: str  # as given
    label: str  # "name vN", "run <name>", a file name
    params: dict[str, str]  # model.* (the reference resolved)
    metrics: dict[str, float]
    per_label: pl.DataFrame | None
    run_id: str | None = None  # the evaluation run
    reused: bool = False
    run_url: str | None = None
    out_dir: str | None = None

    @property
    def evaluation(self) -> str:
        if self.run_id is None:
            return f"folder {self.out_dir}" if self.out_dir else "-"
        return f"{self.run_id} ({'reused' if self.reused else 'new'})"


@dataclass(frozen=True)
class Verdict:
    """Which model is better: by CoralNet's rule (accuracy) and by balanced accuracy."""

    coralnet: str
    balanced: str
    coralnet_best: int | None  # index of the model that passes the rule against every other, if one does
    balanced_best: int | None


@dataclass(frozen=True)
class ModelComparison:
    snapshot_id: str
    snapshot_name: str
    views: list[EvaluationView]
    overview: pl.DataFrame
    verdict: Verdict
    f1: pl.DataFrame
    evaluations: list[EvaluationResult] = field(default_factory=list)  # the ones made by this comparison


def compare_on(
    snapshot: str,
    models: list[str],
    *,
    lake: str | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    mlflow: bool = True,
    reuse: bool = True,
    top: int = 20,
    out_dir: str | Path | None = None,
    progress: Progress | None = None,
    **evaluate_options: Any,
) -> ModelComparison:
    """Every model scored on ``snapshot`` (module docstring): every reference is resolved before any is scored."""
    from mermaid_data.lake import Lake
    from mermaid_data.snapshot.lifecycle import manifest as read_manifest
    from mermaid_data.snapshot.lifecycle import resolve

    from mermaid_train.evaluation import evaluate
    from mermaid_train.lineage import snapshot_digest
    from mermaid_train.model.load import load_model
    from mermaid_train.options import get_train_settings
    from mermaid_train.tracking.evaluation import find_evaluation
    from mermaid_train.tracking.mlflow import check_tracking, resolve_tracking_uri

    if len(models) < 2:
        raise TrainConfigError(f"compare --on needs at least two models, got {len(models)}",
                               fix="pass two or more model references after the snapshot ID")
    uri = None
    if mlflow or any(m.startswith(("models:/", "runs:/")) for m in models):
        uri = resolve_tracking_uri(tracking_uri)
        check_tracking(uri, experiment or get_train_settings().experiment_name)
    lake_obj = Lake.open(lake)  # default: MERMAID_LAKE_URI
    sid = resolve(lake_obj, snapshot)
    manifest = read_manifest(lake_obj, sid)
    loaded = [load_model(m, tracking_uri=uri) for m in models]  # every reference checked before any work
    views, made = [], []
    for model in loaded:
        run = find_evaluation(uri, model_key=model.ref.key, snapshot_id=sid, digest=snapshot_digest(manifest))             if (mlflow and reuse) else None
        if run is not None:
            views.append(_reused_view(model.ref, run, uri))
            continue
        result = evaluate(model, sid, lake=str(lake_obj.uri), tracking_uri=uri, experiment=experiment, mlflow=mlflow,
                          out_dir=out_dir, progress=progress, **evaluate_options)
        made.append(result)
        views.append(_result_view(result))
    overview = _evaluation_overview(views)
    return ModelComparison(sid, manifest.get("name") or "", views, overview, verdict(views),
                           per_label_f1(views, top=top), made)


def _result_view(result: EvaluationResult) -> EvaluationView:
    return EvaluationView(result.model.uri, result.model.label, result.model.params(), dict(result.headline),
                          result.scores.metrics.per_label, result.run_id, False, result.run_url, str(result.out_dir))


def _reused_view(ref, run, uri: str) -> EvaluationView:
    from mermaid_train.tracking.mlflow import ui_urls

    per_label = _per_label_artifact(run.info.run_id, uri)
    url = ui_urls(uri, run.info.experiment_id, run.info.run_id).get("run_url")
    return EvaluationView(ref.uri, ref.label, ref.params(), {k: float(v) for k, v in run.data.metrics.items()},
                          per_label, run.info.run_id, True, url)


def _per_label_artifact(run_id: str, uri: str) -> pl.DataFrame | None:
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        try:
            return pl.read_csv(MlflowClient(tracking_uri=uri).download_artifacts(run_id, "metrics/per_label.csv", tmp))
        except Exception:  # noqa: BLE001 - an evaluation run without the table: no per-label rows
            return None


def _evaluation_overview(views: list[EvaluationView]) -> pl.DataFrame:
    def model_param(view: EvaluationView, key: str) -> str:
        return view.params.get(key, "") or "-"

    rows: list[list[str]] = [
        ["model", *[v.ref for v in views]],
        ["registered", *[f"{v.params['model.registered_name']} v{v.params['model.registered_version']}"
                         if v.params.get("model.registered_name") else "-" for v in views]],
        ["training run", *[_named(model_param(v, "model.source_run_id"), v.params.get("model.source_run_name", ""))
                           for v in views]],
        ["trained on snapshot", *[model_param(v, "model.training_snapshot_id") for v in views]],
        ["evaluation", *[v.evaluation for v in views]],
    ]
    for key, label in EVALUATION_ROWS:
        values = [v.metrics.get(key) for v in views]
        if any(value is not None for value in values):
            rows.append([label, *("" if value is None else f"{int(value):,}" if key in COUNT_ROWS else _fmt(value)
                                  for value in values)])
    columns = [f"{i + 1}: {v.label}" for i, v in enumerate(views)]
    return pl.DataFrame({"field": [r[0] for r in rows], **{c: [r[i + 1] for r in rows] for i, c in enumerate(columns)}})


def _named(identifier: str, name: str) -> str:
    return f"{name} ({identifier})" if name and identifier != "-" else identifier


def verdict(views: list[EvaluationView]) -> Verdict:
    """CoralNet's rule on accuracy over all rows, and the highest balanced accuracy (``Verdict``)."""
    labels = [f"{i + 1}: {v.label}" for i, v in enumerate(views)]
    acc = [float(v.metrics.get("accuracy", float("nan"))) for v in views]
    bal = [float(v.metrics.get("balanced_accuracy", float("nan"))) for v in views]
    best = max(range(len(views)), key=lambda i: acc[i])
    others = [i for i in range(len(views)) if i != best]
    beaten = [i for i in others if acc[best] >= CORALNET_IMPROVEMENT * acc[i]]
    if len(beaten) == len(others):
        against = ", ".join(f"{labels[i]} {acc[i]:.4f}" for i in others)
        coralnet = (f"{labels[best]} is better by CoralNet's rule: accuracy {acc[best]:.4f} is at least "
                    f"{CORALNET_IMPROVEMENT:g}x that of {against}")
        coralnet_best: int | None = best
    else:
        close = ", ".join(f"{labels[i]} {acc[i]:.4f}" for i in others if i not in beaten)
        coralnet = (f"no model is better by CoralNet's rule: the highest accuracy, {labels[best]} {acc[best]:.4f}, "
                    f"is less than {CORALNET_IMPROVEMENT:g}x that of {close}")
        coralnet_best = None
    top = max(range(len(views)), key=lambda i: bal[i])
    ties = [i for i in range(len(views)) if i != top and bal[i] == bal[top]]
    if ties:
        balanced = f"by balanced accuracy: a tie at {bal[top]:.4f} ({', '.join(labels[i] for i in [top, *ties])})"
        balanced_best: int | None = None
    else:
        runner_up = max((i for i in range(len(views)) if i != top), key=lambda i: bal[i])
        balanced = (f"{labels[top]} is better by balanced accuracy: {bal[top]:.4f} against {bal[runner_up]:.4f} "
                    f"({labels[runner_up]})")
        balanced_best = top
    return Verdict(coralnet, balanced, coralnet_best, balanced_best)


__all__ = ["CORALNET_IMPROVEMENT", "EvaluationView", "ModelComparison", "RunView", "Verdict", "compare_on",
           "compare_runs", "load_run", "per_label_f1", "verdict"]
