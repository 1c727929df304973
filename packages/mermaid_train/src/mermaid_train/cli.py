"""``mermaid-train``: train pyspacer classifiers from lake snapshots, compare runs, run the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from mermaid_data.cli_base import make_app, user_errors
from rich.console import Console
from rich.table import Table

app = make_app("mermaid-train", help=__doc__)  # the one-line error boundary, --debug, --version, -h
console = Console()


@app.command()
@user_errors
def run(
    snapshot: Annotated[str, typer.Option("--snapshot", help="Snapshot ID (or a unique prefix) to train from")],
    lake: Annotated[str | None, typer.Option("--lake", help="Lake URI (default: MERMAID_LAKE_URI or ./lake)")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs")] = 10,
    ref_val: Annotated[tuple[float, float], typer.Option("--ref-val", help="Ref and val shares, e.g. 0.1 0.1")] = (0.1, 0.1),
    split: Annotated[str, typer.Option(help="images (no image in two sets) | points (pyspacer's stratified)")] = "images",
    seed: Annotated[int, typer.Option(help="Seed of the split and the trainer")] = 0,
    clf_type: Annotated[str, typer.Option("--clf-type", help="MLP | LR")] = "MLP",
    trainer: Annotated[str, typer.Option(help="packed (ours) | minibatch (pyspacer's stock trainer)")] = "packed",
    previous_model: Annotated[list[str] | None, typer.Option("--previous-model", help="An earlier classifier file (path or s3://) to score on the new val set")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log to MLflow (MLFLOW_TRACKING_URI, default ./mlflow.db) or only write ./runs/<name>")] = True,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment (default: MERMAID_EXPERIMENT_NAME)")] = None,
    model_name: Annotated[str | None, typer.Option("--model-name", help="Registered model name; the date/time is appended")] = None,
    annotations_to_log: Annotated[str | None, typer.Option("--annotations-to-log", help="all | s<source id> | i<image id>")] = None,
    missing_features_allowed: Annotated[float | None, typer.Option("--missing-features-allowed", help="Percent of annotations allowed to lack features")] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help="Where --no-mlflow runs go (default ./runs)")] = None,
) -> None:
    """Train a classifier from a snapshot ID and print its metrics."""
    from mermaid_data.progress import default_progress

    from mermaid_train.errors import TrainConfigError
    from mermaid_train.options import DatasetOptions, MLflowOptions, TrainingOptions
    from mermaid_train.runner import MLflowTrainingRunner, TrainingRunner

    data = DatasetOptions(ref_val_ratios=tuple(ref_val), missing_features_allowed=missing_features_allowed, lake=lake)
    training = TrainingOptions(epochs=epochs, seed=seed, split=split, clf_type=clf_type, trainer=trainer,
                               previous_model_locs=tuple(previous_model or ()))
    common = {"snapshot_id": snapshot, "lake": lake, "progress": default_progress(), "runs_dir": runs_dir}
    if mlflow:
        runner = MLflowTrainingRunner(data, training, MLflowOptions(
            experiment_name=experiment, model_name=model_name, annotations_to_log=annotations_to_log), **common)
    else:
        if experiment or model_name or annotations_to_log:
            raise TrainConfigError("--experiment, --model-name and --annotations-to-log need MLflow",
                                   fix="drop them or leave out --no-mlflow")
        runner = TrainingRunner(data, training, **common)
    runner.run()
    print_result(runner.result)


def print_result(result) -> None:
    """Headline metrics and where everything is."""
    h = result.headline
    table = Table(title=f"{result.run_name}: snapshot {result.snapshot_id}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("annotations train / ref / val", " / ".join(f"{result.counts[k]:,}" for k in ("train", "ref", "val"))),
        ("classes (dropped as too rare)", f"{len(result.classes)} ({len(result.dropped_classes)})"),
        ("accuracy", f"{h['accuracy']:.4f}"),
        ("balanced accuracy", f"{h['balanced_accuracy']:.4f}"),
        ("macro precision / recall / F1", f"{h['macro_precision']:.4f} / {h['macro_recall']:.4f} / {h['macro_f1']:.4f}"),
    ]
    tops = [f"top-{k} {h[f'top_{k}_accuracy']:.4f}" for k in (3, 5) if f"top_{k}_accuracy" in h]
    if tops:
        rows.append(("top-k accuracy", ", ".join(tops)))
    if "ece" in h:
        rows.append(("expected calibration error", f"{h['ece']:.4f}"))
    rows.append(("cover error: mean |bias| / RMSE (pp)", f"{h['cover_mean_abs_bias_pp']:.2f} / {h['cover_rmse_pp']:.2f}"))
    if "source_accuracy_min" in h:
        rows.append(("per-source accuracy min / median / max",
                     f"{h['source_accuracy_min']:.3f} / {h['source_accuracy_median']:.3f} / {h['source_accuracy_max']:.3f}"))
    rows.append(("ref accuracy by epoch", " ".join(f"{a:.3f}" for a in result.ref_accs)))
    for i, acc in enumerate(result.previous_accuracies):
        rows.append((f"previous model {i + 1} accuracy", f"{acc:.4f}"))
    if result.passes_coralnet_rule is not None:
        rows.append(("passes CoralNet's 1.01x rule", "yes" if result.passes_coralnet_rule else "no"))
    rows.append(("train time (s)", f"{h['train_runtime_s']:.1f} (whole run {result.runtime_s:.1f})"))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if result.run_id:
        console.print(f"MLflow run {result.run_id} in {result.tracking_uri}", highlight=False, soft_wrap=True)
        if result.run_url:
            console.print(f"  {result.run_url}", highlight=False, soft_wrap=True)
        console.print(f"model: {result.model_uri}; pyspacer classifier: {result.classifier_uri}", highlight=False,
                      soft_wrap=True)
        console.print(f"artifacts (metrics, plots, reports): {result.artifact_uri}", highlight=False, soft_wrap=True)
    else:
        console.print(f"run folder: {result.out_dir} (classifier: {result.model_path})", highlight=False, soft_wrap=True)


@app.command()
@user_errors
def compare(
    runs: Annotated[list[str], typer.Argument(help="MLflow run IDs or local run folders (./runs/<name>)")],
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="Default: MLFLOW_TRACKING_URI or ./mlflow.db")] = None,
    top: Annotated[int, typer.Option(help="Labels to show, largest F1 differences first")] = 20,
) -> None:
    """Runs side by side: snapshot IDs, options that differ, headline metrics, per-label F1 differences."""
    from mermaid_data.cli import write_frame

    from mermaid_train.compare import compare_runs

    result = compare_runs(runs, tracking_uri, top=top)
    write_frame(result["overview"], "table", None)
    if result["identical_params"]:
        console.print(f"({result['identical_params']} other options are identical in every run)")
    f1 = result["f1"]
    if f1.height:
        console.print("per-label F1, largest differences first:")
        write_frame(f1.with_columns([f1[c].round(4) for c in f1.columns if c.startswith(("f1_", "delta"))]),
                    "table", None)


@app.command()
@user_errors
def demo(
    workdir: Annotated[Path, typer.Option(help="Folder for demo sources, the lake, the feature cache and mlflow.db")] = Path("demo-work"),
    scale: Annotated[str, typer.Option(help="Demo size: tiny|small|medium")] = "small",
    seed: Annotated[int, typer.Option(help="Seed of the demo sources")] = 0,
    epochs: Annotated[int, typer.Option(help="Training epochs")] = 10,
) -> None:
    """The whole job on the embedded default: demo sources → ingest → snapshot → train (MLflow) → summary."""
    from mermaid_train.demo import run_demo

    run_demo(workdir, scale=scale, seed=seed, epochs=epochs)


if __name__ == "__main__":  # pragma: no cover
    app()
