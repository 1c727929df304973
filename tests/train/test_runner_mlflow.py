"""The runners end to end on the tiny demo lake: a real ``mlflow server``, features from S3, bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from mermaid_data.errors import MermaidDataError, SnapshotError
from mermaid_data.lake import Lake
from mermaid_data.snapshot.lifecycle import published_ids
from mermaid_train import DatasetOptions, MLflowOptions, MLflowTrainingRunner, TrainingOptions, TrainingRunner
from mermaid_train.cli import app
from mermaid_train.errors import TrackingError, TrainConfigError, TrainDataError
from typer.testing import CliRunner

from tests.support.mlflow_server import (
    MLflowServer,
    free_port,
    write_sources_csv,
)

RUN_FILES = {
    "classifier.pkl", "valresult.json", "train_summary.yaml", "annotations_val.csv", "split.parquet",
    "profiled_sections.csv", "metrics/metrics.json", "metrics/per_label.csv", "metrics/confusion_matrix.csv",
    "metrics/confusion_matrix.png", "metrics/per_source.csv", "metrics/per_image_cover.csv",
    "metrics/calibration.csv", "metrics/reliability.png", "metrics/epochs.csv", "metrics/epochs.png", "metrics/root_confusion.csv",
    "snapshot/manifest.json", "snapshot/ba_counts.csv", "snapshot/bagf_counts.csv", "snapshot/project_stats.csv",
    "snapshot/unmapped_labels.csv", "snapshot/label_mapping.csv", "snapshot/dropped_by_reason.csv",
}


@pytest.fixture(scope="session")
def train_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("train-cache")


@pytest.fixture(autouse=True)
def _train_env(monkeypatch: pytest.MonkeyPatch, train_cache: Path, tmp_path: Path) -> None:
    """Documented defaults, a session feature cache, and a private working directory (./runs, ./mlflow.db)."""
    for name in ("MLFLOW_TRACKING_URI", "MERMAID_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_NAME", "MERMAID_MODEL_NAME",
                 "MERMAID_MISSING_FEATURES_ALLOWED", "MERMAID_RUNS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MERMAID_TRAIN_CACHE_DIR", str(train_cache))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def sources_csv(runner_lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sources_csv(runner_lake, tmp_path_factory.mktemp("csv") / "sources.csv")


@pytest.fixture(scope="session")
def e2e_run(runner_lake: Lake, mlflow_server: MLflowServer, sources_csv: Path, tmp_path_factory: pytest.TempPathFactory):
    """One MLflow run of MERMAID + every CoralNet source, logged to the real server."""
    source = runner_lake.sql("SELECT source_id FROM annotations WHERE site = 'coralnet' GROUP BY ALL "
                            "ORDER BY count(*) DESC LIMIT 1")["source_id"][0]
    runner = MLflowTrainingRunner(
        dataset_options=DatasetOptions(coralnet_sources_csv=sources_csv, lake=str(runner_lake.uri)),
        training_options=TrainingOptions(epochs=3),
        mlflow_options=MLflowOptions(experiment_name="e2e", model_name="e2e-model", annotations_to_log=f"s{source}",
                                     tracking_uri=mlflow_server.uri),
        runs_dir=tmp_path_factory.mktemp("unused-runs"),
    )
    return_msg, model_loc = runner.run()
    return runner, return_msg, model_loc, source


# --------------------------------------------------------------------------------------------------
# MLflow, end to end
# --------------------------------------------------------------------------------------------------


def test_mlflow_run_reads_back(e2e_run, mlflow_server: MLflowServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)  # for models:/ URIs

    runner, return_msg, model_loc, source = e2e_run
    result = runner.result
    assert 0 <= return_msg.acc <= 1 and len(return_msg.ref_accs) == 3
    assert model_loc.endswith("classifier.pkl")
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("e2e-model-")
    assert client.get_experiment(run.info.experiment_id).name == "e2e"

    params = run.data.params
    assert params["snapshot_id"] == result.snapshot_id
    assert params["snapshot_content_sha256"] == result.manifest["content_sha256"]
    for key in ("dataset.include_mermaid", "dataset.coralnet_sources_csv", "dataset.drop_growthforms",
                "dataset.label_rollup_spec_csv", "dataset.included_labels_csv", "dataset.excluded_labels_csv",
                "dataset.ref_val_ratios", "dataset.annotation_limit", "dataset.missing_features_allowed",
                "training.epochs", "training.seed", "training.split", "training.clf_type", "training.trainer",
                "mlflow.experiment_name", "mlflow.model_name", "mlflow.annotations_to_log"):
        assert key in params, key
    assert params["training.epochs"] == "3"
    assert params["dataset.ref_val_ratios"] == "0.1,0.1"
    assert params["mlflow.annotations_to_log"] == f"s{source}"

    metrics = run.data.metrics
    for key in ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1", "top_3_accuracy",
                "ece", "cover_mean_abs_bias_pp", "cover_rmse_pp", "source_accuracy_min", "source_accuracy_median",
                "source_accuracy_max", "val_annotations", "train_runtime_s", "section_train_seconds"):
        assert key in metrics, key
    assert metrics["accuracy"] == pytest.approx(return_msg.acc)
    assert metrics["source_accuracy_min"] <= metrics["source_accuracy_median"] <= metrics["source_accuracy_max"]
    history = client.get_metric_history(result.run_id, "ref_accuracy")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(return_msg.ref_accs)
    assert len(client.get_metric_history(result.run_id, "epoch_seconds")) == 3

    listed = _artifacts(client, result.run_id)
    assert RUN_FILES | {f"annotations_source_{source}.csv"} <= listed, RUN_FILES - listed
    local = Path(client.download_artifacts(result.run_id, "profiled_sections.csv"))
    sections = pl.read_csv(local)
    assert {"snapshot", "split", "features", "train", "metrics"} <= set(sections["section"])
    assert (sections["peak_rss_mb"] > 0).all()
    selection = pl.read_csv(Path(client.download_artifacts(result.run_id, f"annotations_source_{source}.csv")),
                            schema_overrides={"source_id": pl.String, "image_id": pl.String})
    assert selection.height > 0 and set(selection["source_id"]) == {str(source)}
    summary = yaml.safe_load(Path(client.download_artifacts(result.run_id, "train_summary.yaml")).read_text())
    assert summary["snapshot"]["id"] == result.snapshot_id
    assert summary["training"]["ref_accuracy_per_epoch"] == pytest.approx(return_msg.ref_accs, abs=1e-6)

    # registered model: the model name (the run carries the date/time), version 1 from this run, loadable
    assert result.registered_model == "e2e-model" and result.registered_version == "1"
    versions = client.search_model_versions(f"name='{result.registered_model}'")
    assert len(versions) == 1 and versions[0].run_id == result.run_id
    assert versions[0].tags["snapshot_id"] == result.snapshot_id
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(result.model_uri)
    x = np.asarray(result.example_x, dtype=np.float32)
    assert model.predict(x).shape == (len(x),)
    assert set(model.classes_) == set(result.classes)

    # the snapshot as the dataset input, with its digest
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    assert dataset.name == result.snapshot_id
    assert dataset.digest == result.manifest["content_sha256"][:32]
    assert result.snapshot_id in dataset.source
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"


def test_pyspacer_loads_the_logged_classifier(e2e_run, mlflow_server: MLflowServer) -> None:
    from mlflow import MlflowClient
    from spacer.data_classes import DataLocation
    from spacer.storage import load_classifier

    runner = e2e_run[0]
    path = MlflowClient(tracking_uri=mlflow_server.uri).download_artifacts(runner.result.run_id, "classifier.pkl")
    clf = load_classifier(DataLocation("filesystem", path))
    proba = clf.predict_proba(np.asarray(runner.result.example_x, dtype=np.float64))
    assert proba.shape == (len(runner.result.example_x), len(runner.result.classes))
    valresult = json.loads(Path(MlflowClient(tracking_uri=mlflow_server.uri)
                                .download_artifacts(runner.result.run_id, "valresult.json")).read_text())
    assert len(valresult["gt"]) == runner.result.counts["val"] or len(valresult["gt"]) > 0


def _artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            out |= _artifacts(client, run_id, item.path)
        else:
            out.add(item.path)
    return out


# --------------------------------------------------------------------------------------------------
# without MLflow; the CLI; compare
# --------------------------------------------------------------------------------------------------


def test_training_runner_writes_run_folder(runner_lake: Lake, e2e_run, tmp_path: Path) -> None:
    sid = e2e_run[0].result.snapshot_id
    runner = TrainingRunner(snapshot_id=sid[:12], lake=str(runner_lake.uri),
                            training_options=TrainingOptions(epochs=2, split="points"))
    return_msg, model_loc = runner.run()
    folder = tmp_path / "runs" / runner.run_name
    assert Path(model_loc) == folder / "classifier.pkl" and Path(model_loc).is_file()
    written = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert RUN_FILES <= written, RUN_FILES - written
    assert runner.metrics["accuracy"] == pytest.approx(return_msg.acc)
    assert runner.result.snapshot_id == sid
    assert runner.result.packed_reused is False  # a new split key (points) packs once...
    again = TrainingRunner(snapshot_id=sid, lake=str(runner_lake.uri),
                           training_options=TrainingOptions(epochs=2, split="points", seed=0,
                                                            previous_model_locs=(model_loc,)))
    again.run()
    assert again.result.packed_reused is True  # ...and the second run reuses it
    # champion/challenger: the same recipe and seed scores the earlier model exactly as well
    assert again.result.previous_accuracies == [pytest.approx(return_msg.acc)]
    assert again.result.passes_coralnet_rule is False  # equal is not 1.01x better
    assert again.metrics["previous_model_0_accuracy"] == pytest.approx(return_msg.acc)
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    assert not list((tmp_path / "runs").glob(".*partial"))


def test_cli_run_and_compare(runner_lake: Lake, e2e_run, mlflow_server: MLflowServer, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    import mermaid_data.cli
    import mermaid_train.output

    for console in (mermaid_data.cli.console, mermaid_train.output.console):
        monkeypatch.setattr(console, "_width", 200)  # wide tables: no wrapped cells to search in
    sid = e2e_run[0].result.snapshot_id
    cli = CliRunner()
    out = cli.invoke(app, ["run", "--snapshot", sid, "--lake", str(runner_lake.uri), "--epochs", "1", "--no-mlflow",
                           "--clf-type", "LR", "--runs-dir", str(tmp_path / "r"), "--seed", "1"])
    assert out.exit_code == 0, out.output
    assert "accuracy" in out.output and sid in out.output
    folder = next((tmp_path / "r").iterdir())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    out = cli.invoke(app, ["compare", e2e_run[0].result.run_id, str(folder)], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert sid in out.output
    for text in ("training.clf_type", "MLP", "LR", "balanced_accuracy", "per-label F1", "delta"):
        assert text in out.output, text
    out = cli.invoke(app, ["compare", "0123456789abcdef0123456789abcdef"])
    assert out.exit_code == 2 and "no run" in out.output


# --------------------------------------------------------------------------------------------------
# features from S3
# --------------------------------------------------------------------------------------------------


def test_features_served_from_s3(s3, s3_bucket, demo_sources, tmp_path: Path) -> None:
    from mermaid_data.ingest import ingest

    bucket = s3_bucket("train")
    s3.upload_dir(demo_sources.dest, bucket, "src")
    lake = Lake.open(str(tmp_path / "lake"))
    ingest(lake, mermaid_uri=f"s3://{bucket}/src/mermaid/mermaid_confirmed_annotations.parquet",
           coralnet_uri=f"s3://{bucket}/src/coralnet", api=str(demo_sources.dest / "api"))
    roots = lake.sql("SELECT DISTINCT root_uri FROM sources WHERE site IN ('mermaid', 'coralnet')")["root_uri"].to_list()
    assert roots and all(r.startswith("s3://") for r in roots)
    runner = TrainingRunner(
        DatasetOptions(coralnet_sources_csv=write_sources_csv(lake, tmp_path / "sources.csv"), lake=str(lake.uri)),
        TrainingOptions(epochs=1), cache_dir=tmp_path / "cache")  # a fresh cache: everything comes from S3
    return_msg, _ = runner.run()
    summary = yaml.safe_load((runner.result.out_dir / "train_summary.yaml").read_text())
    fetch = summary["features"]["fetch"]
    assert fetch["fetched"] > 0 and fetch["fetched"] == fetch["requested"] - fetch["missing"]
    assert 0 <= return_msg.acc <= 1


# --------------------------------------------------------------------------------------------------
# bad input: a clear error, before any heavy work, nothing half-written
# --------------------------------------------------------------------------------------------------


def _nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_unknown_snapshot_lists_nearest(runner_lake: Lake, e2e_run, tmp_path: Path) -> None:
    sid = e2e_run[0].result.snapshot_id
    wrong = sid[:-3] + ("000" if not sid.endswith("000") else "111")
    with pytest.raises(SnapshotError) as info:
        TrainingRunner(snapshot_id=wrong, lake=str(runner_lake.uri)).run()
    assert "nearest" in str(info.value) and sid in str(info.value)
    _nothing_written(tmp_path)
    out = CliRunner().invoke(app, ["run", "--snapshot", wrong, "--lake", str(runner_lake.uri), "--no-mlflow"])
    assert out.exit_code == 2
    assert "error:" in out.output and "nearest" in out.output and "Traceback" not in out.output


def test_fewer_than_two_classes(runner_lake: Lake, tmp_path: Path) -> None:
    top = runner_lake.sql("SELECT benthic_attribute_id AS ba, growth_form_id AS gf FROM annotations_mapped "
                         "WHERE site = 'mermaid' GROUP BY ALL ORDER BY count(*) DESC LIMIT 1").row(0)
    include = tmp_path / "one_class.csv"
    include.write_text(f"ba_id,gf_id\n{top[0]},{top[1] or ''}\n")
    with pytest.raises(TrainDataError, match="fewer than two classes"):
        TrainingRunner(DatasetOptions(included_labels_csv=include, lake=str(runner_lake.uri))).run()
    _nothing_written(tmp_path)


def _fail_if_called(*args, **kwargs):
    raise AssertionError("heavy work started")


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"dataset_options": DatasetOptions(ref_val_ratios=(0.5, 0.5))}, TrainConfigError, "sum below 1"),
        ({"dataset_options": DatasetOptions(ref_val_ratios=(0.7, 0.4))}, TrainConfigError, "sum below 1"),
        ({"dataset_options": DatasetOptions(included_labels_csv="a.csv", excluded_labels_csv="b.csv")},
         TrainConfigError, "both an include CSV and an exclude CSV"),
        ({"mlflow_options": MLflowOptions(model_name="team/model")}, TrainConfigError, "'/'"),
        ({"mlflow_options": MLflowOptions(model_name="m" * 241)}, TrainConfigError, "exceed"),
        ({"mlflow_options": MLflowOptions(model_name="")}, TrainConfigError, "empty"),
        ({"mlflow_options": MLflowOptions(annotations_to_log="source 12")}, TrainConfigError, "annotations_to_log"),
        ({"mlflow_options": MLflowOptions(annotations_to_log="s12x")}, TrainConfigError, "annotations_to_log"),
        ({"training_options": TrainingOptions(epochs=0)}, TrainConfigError, "epochs"),
    ],
)
def test_bad_options_fail_before_any_work(kwargs, error, text, runner_lake: Lake, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import mermaid_train.model.spacer
    import mermaid_train.split.assign

    monkeypatch.setattr(mermaid_train.split, "load_snapshot_rows", _fail_if_called)
    monkeypatch.setattr(mermaid_train.model.spacer, "train", _fail_if_called)
    monkeypatch.setattr(Lake, "create_snapshot", _fail_if_called)
    kwargs = dict(kwargs)
    kwargs.setdefault("mlflow_options", MLflowOptions(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"))
    with pytest.raises(error, match=text):
        MLflowTrainingRunner(lake=str(runner_lake.uri), **kwargs).run()
    _nothing_written(tmp_path)
    assert not (tmp_path / "mlflow.db").exists()


def test_unreachable_tracking_server_fails_fast(runner_lake: Lake, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import mermaid_train.model.spacer

    monkeypatch.setattr(mermaid_train.model.spacer, "train", _fail_if_called)
    before = set(published_ids(runner_lake))
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingError) as info:
        MLflowTrainingRunner(DatasetOptions(annotation_limit=1234, lake=str(runner_lake.uri)),
                             mlflow_options=MLflowOptions(tracking_uri=uri)).run()
    assert time.monotonic() - started < 10
    assert uri in str(info.value) and "Fix:" in str(info.value)
    assert set(published_ids(runner_lake)) == before  # not even the snapshot was built
    # an address that drops packets (the timeout path) or, behind a filtering network, answers 404
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://10.255.255.1:5000")
    started = time.monotonic()
    with pytest.raises(TrackingError):
        MLflowTrainingRunner(DatasetOptions(lake=str(runner_lake.uri))).run()
    assert time.monotonic() - started < 10
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = CliRunner().invoke(app, ["run", "--snapshot", "snap-0", "--lake", str(runner_lake.uri)])
    assert out.exit_code == 2 and "cannot reach the MLflow tracking server" in out.output
    assert "Traceback" not in out.output


def test_file_store_is_refused(runner_lake: Lake, tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match="file-system tracking stores"):
        MLflowTrainingRunner(lake=str(runner_lake.uri), mlflow_options=MLflowOptions(tracking_uri=str(tmp_path / "mlruns"))).run()


def test_annotations_to_log_must_exist_in_the_snapshot(runner_lake: Lake, e2e_run, tmp_path: Path) -> None:
    sid = e2e_run[0].result.snapshot_id
    with pytest.raises(TrainConfigError, match="has no annotations of image nope"):
        MLflowTrainingRunner(snapshot_id=sid, lake=str(runner_lake.uri),
                             mlflow_options=MLflowOptions(annotations_to_log="inope",
                                                          tracking_uri=f"sqlite:///{tmp_path}/m.db")).run()
    _nothing_written(tmp_path)


def test_errors_are_mermaid_errors() -> None:
    assert issubclass(TrainConfigError, MermaidDataError) and issubclass(TrackingError, MermaidDataError)


# --------------------------------------------------------------------------------------------------
# recipes: presets, subsample, balance; everything logged
# --------------------------------------------------------------------------------------------------


def test_upstream_recipe_is_logged(runner_lake: Lake, e2e_run, mlflow_server: MLflowServer) -> None:
    """Bug pinned: a recipe option (or its effect) missing from MLflow: every option is part of the run."""
    from mlflow import MlflowClient

    sid = e2e_run[0].result.snapshot_id
    runner = MLflowTrainingRunner(
        training_options=TrainingOptions(preset="upstream", epochs=4, hidden_layer_sizes=(48, 24), blas_threads=1,
                                         logit_adjustment="auto", subsample="balanced:400:3"),
        mlflow_options=MLflowOptions(experiment_name="recipes", model_name="up", tracking_uri=mlflow_server.uri),
        snapshot_id=sid, lake=str(runner_lake.uri))
    runner.run()
    result = runner.result
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    run = client.get_run(result.run_id)
    params = run.data.params
    assert params["training.preset"] == "upstream" and params["training.hidden_layer_sizes"] == "48,24"
    assert params["training.class_weighting"] == "effective_number" and params["training.weight_ratio_cap"] == "50.0"
    assert params["training.early_stopping_patience"] == "3" and params["training.logit_adjustment"] == "auto"
    assert params["training.subsample"] == "balanced:400:3" and params["training.learning_rate"] == "0.0001"
    assert params["recipe_id"] == result.recipe_id == run.data.tags["mermaid.recipe_id"]
    assert result.recipe_id == TrainingOptions(preset="upstream", epochs=4, hidden_layer_sizes=(48, 24), blas_threads=1,
                                               logit_adjustment="auto", subsample="balanced:400:3"
                                               ).recipe().recipe_id(sid)
    metrics = run.data.metrics
    for key in ("mcc", "log_loss", "error_same_root_share", "error_other_root_share", "best_epoch", "epochs_run",
                "logit_adjustment_tau", "model_ref_accuracy", "model_ref_balanced_accuracy", "ref_accuracy_tau0",
                "train_gflops", "blas_threads"):
        assert key in metrics, key
    assert -1 <= metrics["mcc"] <= 1 and metrics["log_loss"] > 0
    epochs = int(metrics["epochs_run"])
    for key in ("train_loss", "ref_loss", "ref_accuracy", "ref_balanced_accuracy", "epoch_seconds"):
        assert len(client.get_metric_history(result.run_id, key)) == epochs, key
    listed = _artifacts(client, result.run_id)
    assert {"subsample_counts.csv", "class_weights.csv", "logit_adjustment.csv", "metrics/root_confusion.csv"} <= listed
    counts = pl.read_csv(client.download_artifacts(result.run_id, "subsample_counts.csv"))
    assert counts.columns == ["class_key", "before", "quota", "kept", "dropped_below_min"]
    assert int(counts["kept"].sum()) == result.counts["train"] <= 400 < result.counts["train_before_subsample"]
    epochs_csv = pl.read_csv(client.download_artifacts(result.run_id, "metrics/epochs.csv"))
    assert epochs_csv["best"].to_list().index(True) == int(metrics["best_epoch"])


def _no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    import mermaid_train.model.spacer

    monkeypatch.setattr(mermaid_train.model.spacer, "train", _fail_if_called)
    monkeypatch.setattr(Lake, "create_snapshot", _fail_if_called)
    monkeypatch.setattr(mermaid_train.split, "load_snapshot_rows", _fail_if_called)


def test_cli_runs_dir_that_is_a_file_fails_before_training(runner_lake: Lake, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug pinned: `--runs-dir FILE` failing after training with a traceback (FileExistsError)."""
    import mermaid_train.split

    _no_training(monkeypatch)
    target = tmp_path / "runs.txt"
    target.write_text("not a folder")
    out = CliRunner().invoke(app, ["run", "--snapshot", "snap-0", "--lake", str(runner_lake.uri), "--no-mlflow",
                                   "--runs-dir", str(target)])
    assert out.exit_code == 2, out.output
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(target) in lines[0] and "Fix:" in lines[0] and "--runs-dir" in lines[0]
    assert "Traceback" not in out.output and target.read_text() == "not a folder"
    assert mermaid_train.split  # the monkeypatched module


@pytest.mark.parametrize("kind", ["missing", "not a classifier"])
def test_cli_previous_model_that_is_not_there_fails_before_training(kind: str, runner_lake: Lake, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug pinned: `--previous-model missing.pkl` failing after training (inside pyspacer) with a traceback."""
    import mermaid_train.split

    _no_training(monkeypatch)
    model = tmp_path / "missing.pkl"
    if kind != "missing":
        model.write_bytes(b"this is not a pickle")
    out = CliRunner().invoke(app, ["run", "--snapshot", "snap-0", "--lake", str(runner_lake.uri), "--no-mlflow",
                                   "--runs-dir", str(tmp_path / "runs"), "--previous-model", str(model)])
    assert out.exit_code == 2, out.output
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(model) in lines[0] and "Fix:" in lines[0] and "--previous-model" in lines[0]
    assert ("not found" if kind == "missing" else "cannot be loaded") in lines[0]
    assert "Traceback" not in out.output and not (tmp_path / "runs").exists()
    assert mermaid_train.split


def test_cli_recipe_flags(runner_lake: Lake, e2e_run, tmp_path: Path) -> None:
    """Bug pinned: a `run` flag not reaching the recipe (each becomes a logged training.* option)."""
    sid = e2e_run[0].result.snapshot_id
    out = CliRunner().invoke(app, [
        "run", "--snapshot", sid, "--lake", str(runner_lake.uri), "--no-mlflow", "--runs-dir", str(tmp_path / "r"),
        "--preset", "upstream", "--epochs", "2", "--hidden-layer-sizes", "32,16", "--learning-rate", "0.001",
        "--batch-size", "128", "--alpha", "0.001", "--early-stopping-patience", "1", "--early-stopping-metric",
        "ref_balanced_accuracy", "--class-weighting", "effective_number", "--weighting-beta", "0.999",
        "--weight-ratio-cap", "20", "--logit-adjustment", "0.5", "--logit-adjustment-max-accuracy-loss", "0.01",
        "--subsample", "stratified:500", "--pack-dtype", "float16", "--blas-threads", "1", "--fetch-workers", "7"])
    assert out.exit_code == 0, out.output
    summary = yaml.safe_load(next((tmp_path / "r").glob("*/train_summary.yaml")).read_text())
    options = summary["options"]
    assert (options["training.hidden_layer_sizes"], options["training.learning_rate"], options["training.batch_size"],
            options["training.alpha"]) == ("32,16", 0.001, 128, 0.001)
    assert (options["training.early_stopping_patience"], options["training.early_stopping_metric"]) == (
        1, "ref_balanced_accuracy")
    assert (options["training.weighting_beta"], options["training.weight_ratio_cap"]) == (0.999, 20.0)
    assert (options["training.logit_adjustment"], options["training.logit_adjustment_max_accuracy_loss"]) == (0.5, 0.01)
    assert (options["training.subsample"], options["training.pack_dtype"], options["training.blas_threads"]) == (
        "stratified:500:0", "float16", 1)
    assert summary["features"]["dtype"] == "float16" and summary["training"]["logit_adjustment_tau"] == 0.5
    assert summary["split"]["subsample"]["kept"] == 500
