"""Use and judge models end to end against a real `mlflow server`: two models from two recipes, one
evaluation snapshot of held-out sources, `evaluate` (CLI), `compare --on`, everything read back with
`MlflowClient`; lineage params, one registered model with two versions, the experiment link; bad input."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from mermaid_data.lake import Lake
from mermaid_data.snapshot import SnapshotSpec
from mermaid_train import MLflowOptions, MLflowTrainingRunner, TrainingOptions
from mermaid_train.cli import app
from mermaid_train.evaluation import evaluate
from typer.testing import CliRunner

from tests.support.cli import assert_names_fix, one_line_error
from tests.support.mlflow_server import MLflowServer

EPOCHS = 2
CLASSES = 6


@dataclass(frozen=True)
class Judged:
    """Two runs (recipes A and B) registered as versions 1 and 2 of one model, and the evaluation snapshot."""

    lake: Lake
    model_name: str
    experiment: str
    runs: tuple  # (RunResult A, RunResult B)
    manifests: tuple  # (manifest A, manifest B)
    eval_id: str
    eval_manifest: dict
    held_out: list[str]
    work: Path


@pytest.fixture(scope="module")
def judged(runner_lake: Lake, mlflow_server: MLflowServer, tmp_path_factory: pytest.TempPathFactory) -> Judged:
    lake = runner_lake
    work = tmp_path_factory.mktemp("judge")
    sources = lake.sql("SELECT source_id, count(*) AS n FROM annotations WHERE site = 'coralnet' GROUP BY ALL "
                       "ORDER BY n DESC, source_id")["source_id"].to_list()
    trained_on, held_out = sources[:1], sources[1:]  # the biggest source trains; the others are held out
    (work / "train_sources.csv").write_text("id\n" + "".join(f"{s}\n" for s in trained_on))
    (work / "heldout_sources.csv").write_text("id\n" + "".join(f"{s}\n" for s in held_out))
    top = lake.sql("SELECT benthic_attribute_id AS ba, coalesce(growth_form_id, '') AS gf FROM annotations_mapped "
                   "GROUP BY ALL ORDER BY count(*) DESC, ba, gf LIMIT ?", [CLASSES]).rows()
    (work / "top_classes.csv").write_text("ba_id,gf_id\n" + "".join(f"{b},{g}\n" for b, g in top))
    # recipe B: growth forms dropped and the fifth class rolled up into the second (B never learns it)
    (work / "fold_fifth.csv").write_text(f"from_ba_id,from_gf_id,to_ba_id,to_gf_id\n{top[4][0]},,{top[1][0]},\n")
    a = lake.create_snapshot(SnapshotSpec(coralnet_sources_csv=work / "train_sources.csv",
                                          included_labels_csv=work / "top_classes.csv", name="judge-a"))
    b = lake.create_snapshot(SnapshotSpec(coralnet_sources_csv=work / "train_sources.csv", drop_growthforms=True,
                                          label_rollup_spec_csv=work / "fold_fifth.csv", name="judge-b"))
    e = lake.create_snapshot(SnapshotSpec(include_mermaid=False, coralnet_sources_csv=work / "heldout_sources.csv",
                                          included_labels_csv=work / "top_classes.csv", name="judge-heldout"))
    name, experiment = f"judge-{uuid.uuid4().hex[:6]}", f"judge-{uuid.uuid4().hex[:6]}"
    runs = []
    for snap in (a, b):
        runner = MLflowTrainingRunner(
            training_options=TrainingOptions(epochs=EPOCHS, blas_threads=1),
            mlflow_options=MLflowOptions(experiment_name=experiment, model_name=name, tracking_uri=mlflow_server.uri),
            snapshot_id=snap.snapshot_id, lake=str(lake.uri), cache_dir=work / "cache")
        runner.run()
        runs.append(runner.result)
    return Judged(lake, name, experiment, tuple(runs), (a.manifest, b.manifest), e.snapshot_id, e.manifest,
                  held_out, work)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, mlflow_server: MLflowServer, tmp_path: Path, request) -> None:
    for name in ("MERMAID_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_NAME", "MERMAID_MODEL_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    if "judged" in request.fixturenames:
        monkeypatch.setenv("MERMAID_TRAIN_CACHE_DIR", str(request.getfixturevalue("judged").work / "cache"))
    monkeypatch.chdir(tmp_path)
    import mermaid_data.cli
    import mermaid_train.output

    for console in (mermaid_data.cli.console, mermaid_train.output.console):
        monkeypatch.setattr(console, "_width", 250)  # wide tables: no wrapped cells to search in


def _client(server: MLflowServer):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.uri)


def _evaluation_runs(server: MLflowServer, judged: Judged) -> list:
    client = _client(server)
    experiment = client.get_experiment_by_name(judged.experiment)
    return client.search_runs([experiment.experiment_id], "tags.`mermaid.run_kind` = 'evaluation'")


def _cli(*args: str):
    return CliRunner().invoke(app, list(args), terminal_width=250)


# --------------------------------------------------------------------------------------------------
# lineage: params equal the recipe; one registered model, two versions; the experiment link
# --------------------------------------------------------------------------------------------------


def test_training_params_are_the_snapshot_recipe(judged: Judged, mlflow_server: MLflowServer) -> None:
    """Bug pinned: training from a snapshot ID logged dataset.coralnet_sources_csv='' and blank rollups and
    drop-growth-forms params although the snapshot held them."""
    client = _client(mlflow_server)
    for result, manifest in zip(judged.runs, judged.manifests):
        params = client.get_run(result.run_id).data.params
        recipe = manifest["recipe"]
        tables, options = recipe["spec_tables"], recipe["options"]
        assert params["snapshot_id"] == manifest["snapshot_id"] == result.snapshot_id
        assert params["snapshot.digest"] == manifest["content_sha256"][:32]
        assert params["lake"] == str(judged.lake.uri)
        assert params["dataset.include_mermaid"] == str(options["include_mermaid"])
        assert params["dataset.drop_growthforms"] == str(options["drop_growthforms"])
        assert params["dataset.coralnet_sources_csv"] == tables["sources"]["path"] != ""
        assert params["snapshot.sources.ids"] == ",".join(sorted((r[0] for r in tables["sources"]["rows"]), key=int))
        assert params["snapshot.sources.sha256"] == tables["sources"]["sha256"]
        for kind, option in (("rollups", "label_rollup_spec_csv"), ("include", "included_labels_csv")):
            if kind in tables:
                assert params[f"dataset.{option}"] == tables[kind]["path"]
                assert params[f"snapshot.{kind}.sha256"] == tables[kind]["sha256"]
                assert params[f"snapshot.{kind}.rows"] == str(len(tables[kind]["rows"]))
            else:
                assert params[f"dataset.{option}"] == "" and f"snapshot.{kind}.sha256" not in params
        for table, version in recipe["input_versions"].items():
            assert params[f"snapshot.input_versions.{table}"] == str(version)
        assert params["snapshot.lake_version"].isdigit()
    a, b = (client.get_run(r.run_id).data.params for r in judged.runs)
    assert (a["dataset.drop_growthforms"], b["dataset.drop_growthforms"]) == ("False", "True")
    assert a["dataset.label_rollup_spec_csv"] == "" and b["dataset.label_rollup_spec_csv"].endswith("fold_fifth.csv")


def test_versions_accumulate_under_the_base_name(judged: Judged, mlflow_server: MLflowServer) -> None:
    """Bug pinned: every run registered a new model `<name>-<date/time>` at version 1 (no version history)."""
    client = _client(mlflow_server)
    assert [m.name for m in client.search_registered_models(f"name = '{judged.model_name}'")] == [judged.model_name]
    assert not client.search_registered_models(f"name LIKE '{judged.model_name}-%'")
    versions = sorted(client.search_model_versions(f"name = '{judged.model_name}'"), key=lambda v: int(v.version))
    assert [v.version for v in versions] == ["1", "2"]
    for version, result in zip(versions, judged.runs):
        run = client.get_run(result.run_id)
        assert version.run_id == result.run_id and result.model_uri == f"models:/{judged.model_name}/{version.version}"
        assert re.fullmatch(re.escape(judged.model_name) + r"-\d{8}-\d{6}(-\d+)?", run.info.run_name)
        assert version.tags["snapshot_id"] == result.snapshot_id
        assert version.tags["snapshot_digest"] == result.manifest["content_sha256"][:32]
        assert version.tags["run_name"] == run.info.run_name
        for key in ("accuracy", "balanced_accuracy", "macro_f1"):
            assert version.tags[key] == f"{run.data.metrics[key]:.4f}"


def test_experiment_link_opens_the_runs_table(judged: Judged, mlflow_server: MLflowServer) -> None:
    """Bug pinned: the experiment link opened MLflow 3's GenAI overview instead of the experiment's runs."""
    from tests.support.chromium import render_url

    result = judged.runs[1]
    experiment = _client(mlflow_server).get_experiment(result.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert result.experiment_url == (f"{mlflow_server.uri}/#/experiments/{result.experiment_id}/runs"
                                     "?workflowType=machine_learning")
    assert result.run_url == (f"{mlflow_server.uri}/#/experiments/{result.experiment_id}/runs/{result.run_id}"
                              "?workflowType=machine_learning")
    text = _visible_text(render_url(result.experiment_url, budget_ms=8000))
    for run in judged.runs:
        assert run.run_name in text, text[:500]  # the runs table lists both runs
    assert "Token Usage" not in text and "Tool calls" not in text  # not the GenAI overview
    plain = _visible_text(render_url(f"{mlflow_server.uri}/#/experiments/{result.experiment_id}", budget_ms=8000))
    assert "Token Usage" in plain  # what the plain link opens (why the link carries ?workflowType=...)


def _visible_text(dom: str) -> str:
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


def test_compare_runs_diffs_the_recipes(judged: Judged) -> None:
    """Bug pinned: `compare` said "16 other options are identical in every run" for runs whose snapshots
    differ in rollups and growth forms."""
    a, b = judged.runs
    out = _cli("compare", a.run_id, b.run_id)
    assert out.exit_code == 0, out.output
    rows = {line.split("│")[1].strip(): line for line in out.output.splitlines() if line.count("│") >= 3}
    for key in ("dataset.drop_growthforms", "dataset.label_rollup_spec_csv", "dataset.included_labels_csv",
                "snapshot.rollups.sha256", "snapshot_content_sha256"):
        assert key in rows, key
    assert "False" in rows["dataset.drop_growthforms"] and "True" in rows["dataset.drop_growthforms"]
    assert "fold_fifth.csv" in rows["dataset.label_rollup_spec_csv"]
    assert f"{a.snapshot_id} (judge-a)" in out.output and f"{b.snapshot_id} (judge-b)" in out.output
    assert f"{judged.model_name} v1" in out.output and f"{judged.model_name} v2" in out.output
    identical = int(re.search(r"\((\d+) other options are identical", out.output).group(1))
    same = [k for k in ("dataset.coralnet_sources_csv", "snapshot.sources.sha256", "dataset.include_mermaid")
            if k not in rows]
    assert len(same) == 3 and identical >= 3  # the shared recipe parts are the identical ones


# --------------------------------------------------------------------------------------------------
# evaluate (CLI) and compare --on, read back
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated(judged: Judged, mlflow_server: MLflowServer, tmp_path_factory: pytest.TempPathFactory):
    """`mermaid-train evaluate` of both versions on the held-out snapshot (the CLI), then `compare --on`."""
    out_dir = tmp_path_factory.mktemp("evaluations")
    outputs = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
        mp.setenv("MERMAID_TRAIN_CACHE_DIR", str(judged.work / "cache"))
        import mermaid_data.cli
        import mermaid_train.output

        for console in (mermaid_data.cli.console, mermaid_train.output.console):
            mp.setattr(console, "_width", 250)
        for version in (1, 2):
            outputs.append(_cli("evaluate", f"models:/{judged.model_name}/{version}", "--snapshot", judged.eval_id,
                                "--lake", str(judged.lake.uri), "--out-dir", str(out_dir)))
        compared = _cli("compare", "--on", judged.eval_id, f"models:/{judged.model_name}/1",
                        f"models:/{judged.model_name}/2", "--lake", str(judged.lake.uri), "--out-dir", str(out_dir))
    return outputs, compared, out_dir


def test_evaluate_cli_scores_every_row(judged: Judged, evaluated) -> None:
    outputs, _, out_dir = evaluated
    rows = judged.eval_manifest["row_count"]
    for out in outputs:
        assert out.exit_code == 0, out.output
        assert f"accuracy, all {rows:,} rows" in out.output
        assert "rows of classes the model knows" in out.output and "evaluation folder:" in out.output
        assert "?workflowType=machine_learning" in out.output
    folders = sorted(out_dir.iterdir())
    assert len(folders) == 2 and not list(out_dir.glob(".*partial"))
    for folder in folders:
        files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        assert {"evaluation.yaml", "annotations_eval.csv", "unknown_classes.csv", "metrics/metrics.json",
                "metrics/per_label.csv", "metrics/confusion_matrix.csv", "metrics/per_source.csv",
                "metrics/calibration.csv", "snapshot/manifest.json", "report.html"} <= files
        table = pl.read_csv(folder / "annotations_eval.csv", schema_overrides={"source_id": pl.String})
        assert table.height == rows and set(table["source_id"]) <= set(judged.held_out)
        metrics = json.loads((folder / "metrics" / "metrics.json").read_text())
        assert metrics["accuracy"] == pytest.approx(table["correct"].mean())
        known = table.filter(pl.col("known_class"))
        assert metrics["accuracy_known_classes"] == pytest.approx(known["correct"].mean())
        unknown = pl.read_csv(folder / "unknown_classes.csv", schema_overrides={"rows": pl.Int64})
        assert int(unknown["rows"].sum()) == int(metrics["unknown_class_points"]) == table.height - known.height


def test_evaluation_runs_read_back(judged: Judged, evaluated, mlflow_server: MLflowServer) -> None:
    client = _client(mlflow_server)
    runs = _evaluation_runs(mlflow_server, judged)
    assert len(runs) == 2  # the CLI's two; compare --on reused them
    by_version = {r.data.params["model.registered_version"]: r for r in runs}
    digest = judged.eval_manifest["content_sha256"][:32]
    eval_classes = {f"{c['benthic_attribute_id']}::{c['growth_form_id'] or ''}"
                    for c in judged.eval_manifest["label_counts"]}
    for version, result in zip(("1", "2"), judged.runs):
        run = by_version[version]
        params, tags, metrics = run.data.params, run.data.tags, run.data.metrics
        assert run.info.status == "FINISHED" and run.info.experiment_id == result.experiment_id  # the model's
        assert params["model.uri"] == f"models:/{judged.model_name}/{version}"
        assert (params["model.registered_name"], params["model.source_run_id"]) == (judged.model_name, result.run_id)
        assert params["model.training_snapshot_id"] == result.snapshot_id
        assert params["snapshot_id"] == tags["mermaid.snapshot_id"] == judged.eval_id
        assert params["dataset.coralnet_sources_csv"].endswith("heldout_sources.csv")  # the eval snapshot's recipe
        assert params["dataset.include_mermaid"] == "False"
        inputs = run.inputs.dataset_inputs
        assert len(inputs) == 1
        assert (inputs[0].dataset.name, inputs[0].dataset.digest) == (judged.eval_id, digest)
        assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "evaluation"
        # classes the model does not know: counted, never dropped
        unknown = eval_classes - set(result.classes)
        assert metrics["unknown_classes"] == len(unknown)
        assert metrics["eval_points"] == judged.eval_manifest["row_count"]
        assert metrics["known_class_points"] + metrics["unknown_class_points"] == metrics["eval_points"]
        assert metrics["accuracy"] <= metrics["accuracy_known_classes"]
        # the metrics are the logged model's too, per dataset (MLflow 3)
        model_id = client.get_model_version(judged.model_name, version).source.split("/")[-1]
        logged = {m.key: m for m in client.get_logged_model(model_id).metrics if m.run_id == run.info.run_id}
        assert logged["accuracy"].value == pytest.approx(metrics["accuracy"])
        assert logged["accuracy"].dataset_name == judged.eval_id and logged["accuracy"].dataset_digest == digest
    assert by_version["2"].data.metrics["unknown_class_points"] > 0  # recipe B folded a class away


def test_compare_on_puts_models_side_by_side(judged: Judged, evaluated, mlflow_server: MLflowServer) -> None:
    _, compared, _ = evaluated
    assert compared.exit_code == 0, compared.output
    text = compared.output
    runs = {r.data.params["model.registered_version"]: r for r in _evaluation_runs(mlflow_server, judged)}
    for version, result in zip(("1", "2"), judged.runs):
        assert f"{judged.model_name} v{version}" in text
        assert f"{runs[version].info.run_id} (reused)" in text
        assert f"{result.run_name} ({result.run_id})" in text  # the training run: name beside ID
    assert f"models on snapshot {judged.eval_id} (judge-heldout)" in text
    acc = [runs[v].data.metrics["accuracy"] for v in ("1", "2")]
    better = [i for i in (0, 1) if acc[i] >= 1.01 * acc[1 - i]]
    if better:
        assert f"{better[0] + 1}: {judged.model_name} v{better[0] + 1} is better by CoralNet's rule" in text
    else:
        assert "no model is better by CoralNet's rule" in text
    assert "better by balanced accuracy" in text or "a tie at" in text
    assert "accuracy (rows of classes the model knows)" in text and "per-label F1" in text
    names = judged.lake.sql("SELECT name FROM benthic_attributes").to_series().to_list()
    assert any(name in text for name in names)  # class names beside the keys


def test_evaluation_report_opens_in_chromium(judged: Judged, evaluated) -> None:
    """Each evaluation folder's report.html is self-contained: its images load from file:, its per-label table
    has a class name beside each key, and it names the model and the evaluation snapshot."""
    from tests.support.chromium import render_dom

    _, _, out_dir = evaluated
    folder = sorted(out_dir.iterdir())[1]  # version 2's (the folder names carry the version)
    assert f"{judged.model_name}-v2" in folder.name
    dom = render_dom(folder / "report.html", budget_ms=4000)
    body = dict(re.findall(r'([\w-]+)="([^"]*)"', re.search(r"<body([^>]*)>", dom).group(1)))
    assert int(body["data-images-total"]) >= 3 and body["data-images-loaded"] == body["data-images-total"], body
    per_label = re.search(r'data-table="per-label">(.*?)</table>', dom, re.DOTALL).group(1)
    names = dict(judged.lake.sql("SELECT id, name FROM benthic_attributes").rows())
    table = pl.read_csv(folder / "metrics" / "per_label.csv")
    for key in table["class_key"].to_list():
        name = names[key.split("::")[0]]
        assert re.search(rf"<td>{re.escape(name)}[^<]*</td><td>{re.escape(key)}</td>", per_label), (name, key)
    assert judged.eval_id in dom and f"models:/{judged.model_name}/2" in dom


def test_predict_on_the_evaluation_snapshot(judged: Judged, evaluated, tmp_path: Path) -> None:
    """`predict` on a snapshot loads the model through the loader `evaluate` uses: per annotation the same best
    class and score as the evaluation's annotations_eval.csv, with names, and low-confidence points marked."""
    _, _, out_dir = evaluated
    folder = sorted(out_dir.iterdir())[1]
    model = f"models:/{judged.model_name}/2"
    out = _cli("predict", model, "--snapshot", judged.eval_id, "--lake", str(judged.lake.uri),
               "--output", str(tmp_path / "p.parquet"), "--min-confidence", "0.5")
    assert out.exit_code == 0, out.output
    assert f"predicted {judged.eval_manifest['row_count']:,} points" in out.output
    predicted = pl.read_parquet(tmp_path / "p.parquet")
    scored = pl.read_csv(folder / "annotations_eval.csv", schema_overrides={"source_id": pl.String})
    both = predicted.join(scored, on="annotation_id", how="full", coalesce=True)
    assert predicted.height == scored.height == both.height == judged.eval_manifest["row_count"]
    assert (both["top1_class_key"] == both["predicted_class"]).all()
    assert (both["top1_name"] == both["predicted_name_right"]).all()  # names: the same, from the lake
    assert both["confidence"].to_numpy() == pytest.approx(both["confidence_right"].to_numpy(), abs=1e-6)
    low = predicted["confidence"] < 0.5
    assert (predicted["low_confidence"] == low).all() and predicted.filter(low)["predicted_class_key"].is_null().all()
    assert predicted.filter(~low)["predicted_name"].is_not_null().all()
    names = set(judged.lake.sql("SELECT name FROM benthic_attributes").to_series().to_list())
    assert {n.split(" / ")[0] for n in predicted["top1_name"].unique().to_list()} <= names


def test_every_reference_form_loads_the_same_model(judged: Judged, mlflow_server: MLflowServer) -> None:
    """Bug pinned: ``runs:/<run id>/model`` (the URI the loader's own fix line suggests) said the run had no
    artifact 'model': MLflow 3 logs a run's model as a LoggedModel, outside the run's artifacts."""
    import numpy as np
    from mermaid_train.model.load import load_model

    result = judged.runs[1]
    version = _client(mlflow_server).get_model_version(judged.model_name, "2")
    loaded = [load_model(uri, tracking_uri=mlflow_server.uri) for uri in (
        f"models:/{judged.model_name}/2", f"models:/{judged.model_name}/latest", f"runs:/{result.run_id}/model",
        f"runs:/{result.run_id}/classifier.pkl")]
    x = np.random.default_rng(0).normal(size=(5, loaded[0].dim)).astype(np.float32)
    for model in loaded:
        assert model.classes == tuple(result.classes) and model.ref.run_id == result.run_id, model.ref
        assert model.ref.model_id == version.source.split("/")[-1], model.ref  # MLflow 3's logged model
        assert model.ref.training_snapshot_id == result.snapshot_id
        assert np.array_equal(model.classifier.predict_proba(x), loaded[0].classifier.predict_proba(x))
    assert {m.ref.key for m in loaded[:2]} == {f"models:/{judged.model_name}/2"}  # latest resolved to its version
    assert [m.ref.kind for m in loaded] == ["registered", "registered", "run", "run"]
    assert [m.labels is not None for m in loaded] == [True, True, True, False]  # names logged with the MLflow model


def test_rows_val_reproduces_the_training_val_set(judged: Judged, mlflow_server: MLflowServer, tmp_path: Path) -> None:
    """`--rows val` on the model's own training snapshot scores exactly its val set: the run's val metrics."""
    result = judged.runs[0]
    scored = evaluate(f"models:/{judged.model_name}/1", result.snapshot_id, lake=str(judged.lake.uri), rows="val",
                      mlflow=False, out_dir=tmp_path / "e")
    assert scored.counts["scored"] == result.counts["val"] and scored.run_id is None
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "top_3_accuracy", "log_loss"):
        assert scored.headline[key] == pytest.approx(result.headline[key], abs=1e-6), key
    assert scored.headline["unknown_class_points"] == 0


# --------------------------------------------------------------------------------------------------
# bad input: one line, nothing written
# --------------------------------------------------------------------------------------------------


def _nothing_written(tmp_path: Path, before: int, server: MLflowServer, judged: Judged) -> None:
    assert not (tmp_path / "evaluations").exists()
    assert len(_evaluation_runs(server, judged)) == before


@pytest.mark.parametrize(
    ("model", "fragments"),
    [
        ("models:/{name}x/1", ["no registered model '{name}x'", "nearest models: {name}"]),
        ("models:/{name}/7", ["model '{name}' has no version '7' (versions: 1, 2)", "models:/{name}/latest"]),
        ("models:/{name}@champion", ["model '{name}' has no alias 'champion'", "there are no aliases"]),
        ("runs:/0123456789abcdef0123456789abcdef/classifier.pkl", ["no run '0123456789abcdef0123456789abcdef'"]),
        ("runs:/{run}/nope.pkl", ["has no artifact 'nope.pkl'; nearest artifacts:", "classifier.pkl"]),
        ("missing/classifier.pkl", ["no such file (the folder", "missing does not exist either)"]),
        ("http://example.org/model.pkl", ["unknown model URI scheme 'http'"]),
    ],
)
def test_model_that_does_not_exist(model: str, fragments: list[str], judged: Judged, mlflow_server: MLflowServer,
                                   tmp_path: Path) -> None:
    before = len(_evaluation_runs(mlflow_server, judged))
    model = model.format(name=judged.model_name, run=judged.runs[0].run_id)
    line = one_line_error(_cli("evaluate", model, "--snapshot", judged.eval_id, "--lake", str(judged.lake.uri)))
    for fragment in fragments:
        assert fragment.format(name=judged.model_name) in line, line
    assert_names_fix(line)
    _nothing_written(tmp_path, before, mlflow_server, judged)


def test_snapshot_without_the_models_classes(judged: Judged, mlflow_server: MLflowServer, tmp_path: Path) -> None:
    lake = judged.lake
    known = set(judged.runs[0].classes)
    others = [r for r in lake.sql("SELECT benthic_attribute_id AS ba, coalesce(growth_form_id, '') AS gf, count(*) AS n "
                                  "FROM annotations_mapped GROUP BY ALL ORDER BY n DESC, ba, gf").rows()
              if f"{r[0]}::{r[1]}" not in known][:3]
    (tmp_path / "others.csv").write_text("ba_id,gf_id\n" + "".join(f"{b},{g}\n" for b, g, _ in others))
    snap = lake.create_snapshot(SnapshotSpec(included_labels_csv=tmp_path / "others.csv", name="judge-disjoint"))
    before = len(_evaluation_runs(mlflow_server, judged))
    line = one_line_error(_cli("evaluate", f"models:/{judged.model_name}/1", "--snapshot", snap.snapshot_id,
                               "--lake", str(lake.uri)))
    assert f"none of the snapshot {snap.snapshot_id}'s 3 classes is among the model's" in line, line
    assert_names_fix(line)
    _nothing_written(tmp_path, before, mlflow_server, judged)


def test_unknown_snapshot_and_foreign_val_rows(judged: Judged, mlflow_server: MLflowServer, tmp_path: Path) -> None:
    before = len(_evaluation_runs(mlflow_server, judged))
    model = f"models:/{judged.model_name}/1"
    line = one_line_error(_cli("evaluate", model, "--snapshot", "snap-0000ffff", "--lake", str(judged.lake.uri)))
    assert "no snapshot 'snap-0000ffff'; nearest:" in line
    line = one_line_error(_cli("evaluate", model, "--snapshot", judged.eval_id, "--rows", "val",
                               "--lake", str(judged.lake.uri)))
    assert f"its training snapshot {judged.runs[0].snapshot_id}, not of {judged.eval_id}" in line
    assert f"--snapshot {judged.runs[0].snapshot_id} --rows val" in line
    line = one_line_error(_cli("evaluate", model, "--snapshot", judged.eval_id, "--rows", "some",
                               "--lake", str(judged.lake.uri)))
    assert "rows 'some' is not one of all, val" in line
    line = one_line_error(_cli("compare", "--on", judged.eval_id, model, "--lake", str(judged.lake.uri)))
    assert "needs at least two models" in line
    _nothing_written(tmp_path, before, mlflow_server, judged)
