"""``mermaid-train``: train pyspacer classifiers from lake snapshots, evaluate and compare them, predict, run the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from mermaid_data.cli_base import make_app, user_errors

app = make_app("mermaid-train", help=__doc__)  # the one-line error boundary, --debug, --version, -h


@app.command()
@user_errors
def run(
    snapshot: Annotated[str, typer.Option("--snapshot", help="Snapshot ID (or a unique prefix) to train from")],
    lake: Annotated[str | None, typer.Option("--lake", help="Lake URI (default: MERMAID_LAKE_URI or ./lake)")] = None,
    preset: Annotated[str, typer.Option(help="pyspacer (its 2023 recipe) | upstream (its current one); flags below override it")] = "pyspacer",
    epochs: Annotated[int | None, typer.Option(help="Training epochs (the most, with early stopping); default: the preset's")] = None,
    ref_val: Annotated[tuple[float, float], typer.Option("--ref-val", help="Ref and val shares, e.g. 0.1 0.1")] = (0.1, 0.1),
    split: Annotated[str, typer.Option(help="images (no image in two sets) | points (pyspacer's stratified)")] = "images",
    seed: Annotated[int, typer.Option(help="Seed of the split and the trainer")] = 0,
    clf_type: Annotated[str, typer.Option("--clf-type", help="MLP | LR")] = "MLP",
    trainer: Annotated[str, typer.Option(help="packed (ours) | minibatch (pyspacer's stock trainer)")] = "packed",
    hidden_layer_sizes: Annotated[str | None, typer.Option("--hidden-layer-sizes", help="MLP widths, e.g. 500,300,100")] = None,
    learning_rate: Annotated[float | None, typer.Option("--learning-rate", help="Adam's learning rate")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Points per optimizer step (MLP); rows per partial_fit (LR, stock)")] = None,
    alpha: Annotated[float | None, typer.Option(help="L2 penalty")] = None,
    early_stopping_patience: Annotated[int | None, typer.Option("--early-stopping-patience", help="Stop after N epochs without improvement on ref (0 = off)")] = None,
    early_stopping_metric: Annotated[str | None, typer.Option("--early-stopping-metric", help="ref_loss | ref_balanced_accuracy")] = None,
    class_weighting: Annotated[str | None, typer.Option("--class-weighting", help="effective_number | none")] = None,
    weighting_beta: Annotated[float | None, typer.Option("--weighting-beta", help="Effective-number beta (0.9999)")] = None,
    weight_ratio_cap: Annotated[float | None, typer.Option("--weight-ratio-cap", help="Largest / smallest class weight (0 = no cap)")] = None,
    logit_adjustment: Annotated[str | None, typer.Option("--logit-adjustment", help="auto (tau chosen on ref) | a tau | none")] = None,
    logit_adjustment_max_accuracy_loss: Annotated[float | None, typer.Option("--logit-adjustment-max-accuracy-loss", help="Ref accuracy 'auto' may give up (0.03)")] = None,
    subsample: Annotated[str | None, typer.Option(help="Train subsample: stratified|balanced:TOTAL[:MIN_PER_CLASS]")] = None,
    pack_dtype: Annotated[str | None, typer.Option("--pack-dtype", help="float32 | float16 (half the disk and I/O)")] = None,
    blas_threads: Annotated[int | None, typer.Option("--blas-threads", help="BLAS threads (default: chosen by a short measurement)")] = None,
    fetch_workers: Annotated[int | None, typer.Option("--fetch-workers", help="Parallel feature downloads (MERMAID_FEATURE_FETCH_WORKERS, 50)")] = None,
    previous_model: Annotated[list[str] | None, typer.Option("--previous-model", help="An earlier classifier file (path or s3://) to score on the new val set")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log to MLflow (MLFLOW_TRACKING_URI, default ./mlflow.db) or only write ./runs/<name>")] = True,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment (default: MERMAID_EXPERIMENT_NAME)")] = None,
    model_name: Annotated[str | None, typer.Option("--model-name", help="Registered model name (each run adds a version; the run is named NAME-<date/time>); default: MERMAID_MODEL_NAME, else from the recipe")] = None,
    annotations_to_log: Annotated[str | None, typer.Option("--annotations-to-log", help="all | s<source id> | i<image id>")] = None,
    missing_features_allowed: Annotated[float | None, typer.Option("--missing-features-allowed", help="Percent of annotations allowed to lack features")] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help="Where --no-mlflow runs go, and MLflow runs whose logging failed (default ./runs)")] = None,
) -> None:
    """Train a classifier from a snapshot ID and print its metrics."""
    from mermaid_data.progress import default_progress

    from mermaid_train.errors import TrainConfigError
    from mermaid_train.options import DatasetOptions, MLflowOptions, TrainingOptions
    from mermaid_train.output import print_result
    from mermaid_train.runner import MLflowTrainingRunner, TrainingRunner

    data = DatasetOptions(ref_val_ratios=tuple(ref_val), missing_features_allowed=missing_features_allowed, lake=lake)
    training = TrainingOptions(
        epochs=epochs, seed=seed, split=split, clf_type=clf_type, trainer=trainer, batch_size=batch_size,
        previous_model_locs=tuple(previous_model or ()), preset=preset, hidden_layer_sizes=hidden_layer_sizes,
        learning_rate=learning_rate, alpha=alpha, early_stopping_patience=early_stopping_patience,
        early_stopping_metric=early_stopping_metric, class_weighting=class_weighting, weighting_beta=weighting_beta,
        weight_ratio_cap=weight_ratio_cap, logit_adjustment=logit_adjustment,
        logit_adjustment_max_accuracy_loss=logit_adjustment_max_accuracy_loss, subsample=subsample,
        pack_dtype=pack_dtype, blas_threads=blas_threads)
    common = {"snapshot_id": snapshot, "lake": lake, "progress": default_progress(), "runs_dir": runs_dir,
              "fetch_workers": fetch_workers}
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


MODEL_HELP = ("models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN_ID/classifier.pkl (or /model), "
              "or a pyspacer classifier file (path or s3://)")


@app.command()
@user_errors
def evaluate(
    model: Annotated[str, typer.Argument(help=f"The model: {MODEL_HELP}")],
    snapshot: Annotated[str, typer.Option("--snapshot", help="Snapshot ID (or a unique prefix) to score it on")],
    lake: Annotated[str | None, typer.Option("--lake", help="Lake URI (default: MERMAID_LAKE_URI or ./lake)")] = None,
    rows: Annotated[str, typer.Option(help="all (every row of the snapshot) | val (the model's own val set; its training snapshot only)")] = "all",
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="Default: MLFLOW_TRACKING_URI or ./mlflow.db")] = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment of the evaluation run (default: the training run's, else MERMAID_EXPERIMENT_NAME)")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log an MLflow evaluation run, or only write the folder")] = True,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Where the evaluation folder goes (default ./evaluations)")] = None,
    fetch_workers: Annotated[int | None, typer.Option("--fetch-workers", help="Parallel feature downloads (MERMAID_FEATURE_FETCH_WORKERS, 50)")] = None,
    missing_features_allowed: Annotated[float | None, typer.Option("--missing-features-allowed", help="Percent of rows allowed to lack features")] = None,
) -> None:
    """Score a model on a snapshot with the training metrics; unknown classes counted, never dropped."""
    from mermaid_data.progress import default_progress

    from mermaid_train.evaluation import evaluate as run_evaluation
    from mermaid_train.output import print_evaluation

    print_evaluation(run_evaluation(
        model, snapshot, lake=lake, rows=rows, tracking_uri=tracking_uri, experiment=experiment, mlflow=mlflow,
        out_dir=out_dir, fetch_workers=fetch_workers, missing_features_allowed=missing_features_allowed,
        progress=default_progress()))


@app.command()
@user_errors
def compare(
    refs: Annotated[list[str], typer.Argument(help="MLflow run IDs or local run folders (./runs/<name>); with --on, models: " + MODEL_HELP)],
    on: Annotated[str | None, typer.Option("--on", help="Compare MODELS on this snapshot ID: each evaluated there (or its earlier evaluation run reused)")] = None,
    lake: Annotated[str | None, typer.Option("--lake", help="With --on: the lake (default: MERMAID_LAKE_URI or ./lake)")] = None,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="Default: MLFLOW_TRACKING_URI or ./mlflow.db")] = None,
    experiment: Annotated[str | None, typer.Option(help="With --on: experiment of new evaluation runs")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="With --on: log (and reuse) evaluation runs, or only write folders")] = True,
    reuse: Annotated[bool, typer.Option("--reuse/--no-reuse", help="With --on: reuse an earlier evaluation run of the same model on the same snapshot")] = True,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="With --on: where evaluation folders go (default ./evaluations)")] = None,
    top: Annotated[int, typer.Option(help="Labels to show, largest F1 differences first")] = 20,
) -> None:
    """Runs side by side (snapshots, recipe options that differ, metrics, per-label F1), or models on one snapshot (--on)."""
    from mermaid_train.errors import TrainConfigError

    if on is None:
        from mermaid_train.compare import compare_runs
        from mermaid_train.output import print_comparison

        if lake or experiment or not mlflow or not reuse or out_dir:
            raise TrainConfigError("--lake, --experiment, --no-mlflow, --no-reuse and --out-dir go with --on",
                                   fix="add --on SNAPSHOT_ID to compare models on a snapshot, or drop them")
        print_comparison(compare_runs(refs, tracking_uri, top=top))
        return
    from mermaid_data.progress import default_progress

    from mermaid_train.compare import compare_on
    from mermaid_train.output import print_model_comparison

    print_model_comparison(compare_on(on, refs, lake=lake, tracking_uri=tracking_uri, experiment=experiment,
                                      mlflow=mlflow, reuse=reuse, top=top, out_dir=out_dir,
                                      progress=default_progress()))


@app.command()
@user_errors
def predict(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN_ID/PATH, or a classifier file (path or s3://)")],
    more_features: Annotated[list[str] | None, typer.Argument(metavar="FILE_OR_PREFIX", help="More --features files or prefixes (so that `--features dir/*.featurevector` works)", show_default=False)] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Predictions file: .parquet or .csv (its folder must exist)")] = ...,
    snapshot: Annotated[str | None, typer.Option("--snapshot", help="Predict every annotation of this snapshot ID (or prefix)")] = None,
    lake: Annotated[str | None, typer.Option("--lake", help="Lake URI (default: MERMAID_LAKE_URI or ./lake); with --features, names from its taxonomy")] = None,
    features: Annotated[list[str] | None, typer.Option("--features", metavar="FILE_OR_PREFIX", help="pyspacer feature files, or folders / s3:// prefixes of *.featurevector and *_featurevector files")] = None,
    points: Annotated[Path | None, typer.Option("--points", help="CSV of the points to predict: file (or image), row, col; default every point of each file")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Classes per point, best first")] = 3,
    min_confidence: Annotated[float | None, typer.Option("--min-confidence", help="Mark points whose best score is lower (MERMAID: 0.5) as low-confidence, without a predicted class")] = None,
    format: Annotated[str | None, typer.Option("--format", help="parquet | csv (default: from the --output extension)")] = None,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="For models:/ and runs:/ (default: MLFLOW_TRACKING_URI or ./mlflow.db)")] = None,
    fetch_workers: Annotated[int | None, typer.Option("--fetch-workers", help="Parallel feature downloads (MERMAID_FEATURE_FETCH_WORKERS, 50)")] = None,
) -> None:
    """Classify points with a model: per point the top-k classes with names and calibrated scores."""
    from mermaid_data.progress import default_progress

    from mermaid_train.errors import TrainConfigError
    from mermaid_train.output import print_prediction
    from mermaid_train.predict import predict as run_predict

    if more_features and not features:
        raise TrainConfigError(f"unexpected argument {more_features[0]!r}",
                               fix="put feature files and prefixes after --features")
    print_prediction(run_predict(
        model, output=output, snapshot=snapshot, lake=lake, features=[*(features or ()), *(more_features or ())],
        points_csv=points, top_k=top_k, min_confidence=min_confidence, format=format, tracking_uri=tracking_uri,
        fetch_workers=fetch_workers, progress=default_progress()))


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


@app.command("log")
def log_command(
    run_folder: Annotated[Path, typer.Argument(help="A run folder kept after MLflow logging failed (the error names it)")],
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="Default: where the failed attempt logged to")] = None,
    experiment: Annotated[str | None, typer.Option(help="Default: the failed attempt's experiment")] = None,
) -> None:
    """Log a trained run whose MLflow logging failed (the model, metrics and reports in its folder)."""
    from mermaid_data.progress import default_progress

    from mermaid_train.output import print_result
    from mermaid_train.tracking.pending import log_later

    print_result(log_later(run_folder, tracking_uri=tracking_uri, experiment=experiment, progress=default_progress()))


@app.command()
def cleanup(
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Default: MERMAID_TRAIN_CACHE_DIR (~/.cache/mermaid-train)")] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help="Default: MERMAID_RUNS_DIR (./runs)")] = None,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="Default: MLFLOW_TRACKING_URI or ./mlflow.db (if it exists)")] = None,
    experiment: Annotated[str | None, typer.Option(help="Only this experiment's runs (default: every experiment)")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Also mark dead trainers' RUNNING runs FAILED")] = True,
) -> None:
    """Remove what killed trainers left (packs, scratch folders) and fail their RUNNING MLflow runs; never a live one's."""
    from dataclasses import replace

    from mermaid_train import leftovers
    from mermaid_train.options import get_train_settings
    from mermaid_train.output import print_cleanup
    from mermaid_train.tracking.mlflow import (
        bounded,
        check_tracking,
        default_tracking_uri,
        fail_orphaned_runs,
        resolve_tracking_uri,
        within,
    )

    settings = get_train_settings()
    report = leftovers.clean(cache_dir=(cache_dir or Path(settings.cache_dir)).expanduser(),
                             runs_dir=(runs_dir or Path(settings.runs_dir)).expanduser())
    uri = resolve_tracking_uri(tracking_uri)
    if mlflow and not (uri == default_tracking_uri() and not Path.cwd().joinpath("mlflow.db").exists()):
        check_tracking(uri, experiment or "Default")
        with bounded():
            failed = within(settings.tracking_deadline_s, lambda: fail_orphaned_runs(uri, experiment),
                            "marking orphaned runs FAILED", uri)
        report = replace(report, failed_runs=list(failed))
    print_cleanup(report)


if __name__ == "__main__":  # pragma: no cover
    app()
