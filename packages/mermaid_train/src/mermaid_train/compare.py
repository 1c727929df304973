"""``mermaid-train compare``: runs side by side — snapshot IDs, options, headline metrics, per-label F1.

A run is an MLflow run ID (read with ``MlflowClient`` from the tracking URI) or a local run folder
written by ``TrainingRunner`` (``./runs/<run name>``, holding ``train_summary.yaml``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml

from mermaid_train.errors import TrackingError

HEADLINE = (
    "accuracy", "balanced_accuracy", "macro_f1", "macro_precision", "macro_recall", "mcc", "log_loss",
    "error_same_root_share", "top_3_accuracy",
    "top_5_accuracy", "ece", "cover_mean_abs_bias_pp", "cover_rmse_pp", "source_accuracy_min",
    "source_accuracy_median", "source_accuracy_max", "final_ref_accuracy", "best_epoch", "epochs_run",
    "logit_adjustment_tau", "val_points", "val_classes", "train_runtime_s", "train_gflops",
)
ALWAYS_SHOWN = ("snapshot_id", "training.epochs", "training.trainer", "training.clf_type", "training.split",
                "training.seed", "training.preset", "dataset.ref_val_ratios")


@dataclass
class RunView:
    ref: str
    name: str
    snapshot_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    per_label: pl.DataFrame | None


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
    return RunView(run_id, run.info.run_name or run_id, params.get("snapshot_id", ""), params,
                   {k: float(v) for k, v in run.data.metrics.items()}, per_label)


def compare_runs(refs: list[str], tracking_uri: str | None = None, *, top: int = 20) -> dict:
    """``{"runs", "overview", "identical_params", "f1"}``: tables ready to print."""
    runs = [load_run(r, tracking_uri) for r in refs]
    columns = [f"{i + 1}: {r.name}" for i, r in enumerate(runs)]
    rows: list[list[str]] = [["run", *[r.ref for r in runs]], ["snapshot_id", *[r.snapshot_id for r in runs]]]
    keys = sorted(set().union(*(r.params for r in runs)) - {"snapshot_id"})
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


def per_label_f1(runs: list[RunView], *, top: int = 20) -> pl.DataFrame:
    """F1 per class in each run and the spread (last - first for two runs, else max - min), largest first."""
    tables = []
    for i, run in enumerate(runs):
        if run.per_label is None:
            continue
        tables.append(run.per_label.select("class_key", "name", pl.col("f1").alias(f"f1_{i + 1}"),
                                           pl.col("support").alias(f"support_{i + 1}")))
    if not tables:
        return pl.DataFrame()
    merged = tables[0]
    for t in tables[1:]:
        merged = merged.join(t.drop("name"), on="class_key", how="full", coalesce=True)
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


__all__ = ["RunView", "compare_runs", "load_run", "per_label_f1"]
