"""``mermaid-train predict`` on a snapshot and on feature files in S3 (moto), the logged model's python_function
from a real ``mlflow server`` (names; float32 and float64), and predict's bad input (one line, nothing written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from mermaid_data.lake import Lake
from mermaid_train import MLflowOptions, MLflowTrainingRunner, TrainingOptions, TrainingRunner
from mermaid_train.cli import app
from mermaid_train.labels import TaxonomyNames
from mermaid_train.predict import predict
from typer.testing import CliRunner

from tests.support import tiny_model
from tests.support.mlflow_server import MLflowServer, session_mlflow_server


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """A feature cache of this module's own, no tracking URI from outside, a private working directory."""
    monkeypatch.setenv("MERMAID_TRAIN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "predict-cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def run_folder(train_lake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trained model (no MLflow) on the train_lake snapshot; its run folder."""
    runner = TrainingRunner(snapshot_id=train_lake.snapshot_id, lake=str(train_lake.lake.uri),
                            training_options=TrainingOptions(epochs=3),
                            runs_dir=tmp_path_factory.mktemp("predict-runs"),
                            cache_dir=tmp_path_factory.getbasetemp() / "predict-cache")
    runner.run()
    return runner.result.out_dir


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args), terminal_width=200)
    return result


def _one_line_error(result, *texts: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("[mermaid]")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for text in texts:
        assert text in lines[0], (text, lines[0])


def _nothing_written(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(("out", ".out"))]


# --------------------------------------------------------------------------------------------------
# golden: a tiny model whose scores are known by hand
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    """``(classifier.pkl, i1.featurevector)`` of ``tests/support/tiny_model.py``, in this test's own folder."""
    return tiny_model.write(tmp_path / "tiny")


def _approx_rows(rows: list[dict]) -> list[dict]:
    return [{k: pytest.approx(v, abs=1e-9) if isinstance(v, float) else v for k, v in row.items()} for row in rows]


def test_golden_top_k_rows_of_a_tiny_model(tiny, tmp_path: Path) -> None:
    """The three hand-checked rows (``tiny_model``): top 2 with BA / GF ids and names, the tie broken by class
    order, the point under --min-confidence 0.5 kept but without a predicted class; CSV says the same."""
    model, features = tiny
    out = predict(str(model), features=[str(features)], output=tmp_path / "out.parquet", top_k=2, min_confidence=0.5)
    frame = pl.read_parquet(out.output)
    assert frame.columns[:7] == ["feature_file", "row", "col", "predicted_class_key", "predicted_name", "confidence",
                                 "low_confidence"]
    assert frame.columns[7:14] == ["top1_class_key", "top1_benthic_attribute_id", "top1_benthic_attribute_name",
                                   "top1_growth_form_id", "top1_growth_form_name", "top1_name", "top1_score"]
    assert frame["feature_file"].to_list() == [str(features.resolve())] * 3
    assert frame.select("row", "col").rows() == [(10, 20), (30, 40), (50, 60)]
    assert frame.drop("feature_file", "row", "col").to_dicts() == _approx_rows(tiny_model.expected_rows(0.5))
    assert (out.points, out.files, out.classes, out.top_k, out.low_confidence) == (3, 1, 3, 2, 1)
    assert out.summary.select("name", "points", "share").rows() == [
        ("Acropora / Branching", 1, pytest.approx(1 / 3)), ("Porites / Massive", 1, pytest.approx(1 / 3)),
        ("(low confidence: unclassified)", 1, pytest.approx(1 / 3))]

    # the same rows as CSV (nulls as empty fields); without --min-confidence nothing is low-confidence
    csv = predict(str(model), features=[str(features)], output=tmp_path / "out.csv", top_k=2)
    again = pl.read_csv(csv.output, infer_schema_length=None)
    assert again.drop("feature_file", "row", "col").to_dicts() == _approx_rows(tiny_model.expected_rows(None))

    # --top-k above the class count is capped at it: the third class comes last
    wide = pl.read_parquet(predict(str(model), features=[str(features)], output=tmp_path / "wide.parquet",
                                   top_k=5).output)
    assert "top4_class_key" not in wide.columns
    assert wide["top3_name"].to_list() == ["Sand", "Acropora / Branching", "Sand"]
    assert wide["top3_score"].to_list() == pytest.approx([0.20, 0.10, 1 / 3], abs=1e-9)


# --------------------------------------------------------------------------------------------------
# a snapshot; the run folder's report
# --------------------------------------------------------------------------------------------------


def test_run_folder_has_a_report_and_names(run_folder: Path) -> None:
    page = (run_folder / "report.html").read_text(encoding="utf-8")
    per_label = pl.read_csv(run_folder / "metrics" / "per_label.csv")
    assert {"class_key", "name", "root_group"} <= set(per_label.columns)
    assert per_label["name"].str.contains("::").sum() == 0  # every class has a name, none falls back to its key
    for name in per_label["name"]:
        assert f"<td>{name}</td>" in page.replace("&#x27;", "'"), name
    assert page.count("src='data:image/png;base64,") == 5
    classes = pl.read_csv(run_folder / "classes.csv")
    assert classes.columns[:3] == ["class_key", "benthic_attribute_id", "benthic_attribute_name"]
    assert classes["benthic_attribute_name"].null_count() == 0


def test_predict_a_snapshot_as_pyspacer_would(train_lake, run_folder: Path, tmp_path: Path) -> None:
    from spacer.data_classes import DataLocation
    from spacer.messages import ClassifyFeaturesMsg
    from spacer.tasks import classify_features

    lake: Lake = train_lake.lake
    out = predict(str(run_folder / "classifier.pkl"), snapshot=train_lake.snapshot_id[:12], lake=str(lake.uri),
                  output=tmp_path / "out.parquet", top_k=3)
    frame = pl.read_parquet(out.output)
    rows = lake.sql(f"SELECT annotation_id, benthic_attribute_id, benthic_attribute_name FROM "
                    f"snapshot('{train_lake.snapshot_id}')")
    assert frame.height == rows.height == out.points
    assert frame["annotation_id"].to_list() == rows["annotation_id"].to_list()  # the snapshot's order
    assert frame.columns[:6] == ["annotation_id", "site", "source_id", "image_id", "row", "col"]
    assert {"top3_class_key", "top3_score"} <= set(frame.columns) and "top4_class_key" not in frame.columns
    names = dict(zip(rows["benthic_attribute_id"], rows["benthic_attribute_name"]))
    assert (frame["top1_benthic_attribute_name"] == frame["top1_benthic_attribute_id"].replace_strict(names)).all()
    assert not frame["low_confidence"].any() and frame["predicted_class_key"].null_count() == 0
    assert out.names_from.startswith("the lake")
    scores = frame.select(pl.col("^top[123]_score$")).to_numpy()
    assert (np.diff(scores, axis=1) <= 0).all()

    # pyspacer's own classify_features on one image gives the same classes and calibrated scores
    image = frame.row(0, named=True)
    uri = lake.sql(f"SELECT root_uri || '/' || feature_key AS uri FROM snapshot('{train_lake.snapshot_id}') "
                   f"JOIN sources USING (site, source_id) WHERE annotation_id = '{image['annotation_id']}'")["uri"][0]
    msg = ClassifyFeaturesMsg(job_token="t", feature_loc=DataLocation("filesystem", uri),
                              classifier_loc=DataLocation("filesystem", str(run_folder / "classifier.pkl")))
    theirs = classify_features(msg)
    ours = frame.filter((pl.col("site") == image["site"]) & (pl.col("source_id") == image["source_id"])
                        & (pl.col("image_id") == image["image_id"]))
    by_point = {(r, c): s for r, c, s in theirs.scores}
    for row in ours.iter_rows(named=True):
        expected = np.asarray(by_point[(row["row"], row["col"])])
        assert theirs.classes[int(expected.argmax())] == row["top1_class_key"]
        assert row["top1_score"] == pytest.approx(float(expected.max()), abs=1e-5)


def test_fast_proba_equals_scikit_learn(run_folder: Path) -> None:
    """Fast path vs strict: pyspacer's calibrated MLP scored by ``ranking.fast_proba`` and by scikit-learn agree,
    with our float32 weights and with float64 ones (pyspacer's stock trainer)."""
    import copy

    from mermaid_train.model import ranking
    from mermaid_train.model.export import load_classifier

    model = load_classifier(str(run_folder / "classifier.pkl"))
    assert ranking.fast_proba(model) is not None
    x = np.random.default_rng(0).normal(size=(5000, model.n_features_in_)).astype(np.float32)
    x[:3] = 0.0
    strict = ranking.predict_proba(model, x, strict=True, chunk=1024)
    fast = ranking.predict_proba(model, x, chunk=1024)
    assert np.allclose(fast, strict, rtol=0, atol=1e-12) and (fast.argmax(axis=1) == strict.argmax(axis=1)).all()
    wide = copy.deepcopy(model)
    net = wide.calibrated_classifiers_[0].estimator
    net.coefs_ = [w.astype(np.float64) for w in net.coefs_]
    net.intercepts_ = [b.astype(np.float64) for b in net.intercepts_]
    assert np.allclose(ranking.predict_proba(wide, x), wide.predict_proba(x), rtol=0, atol=1e-12)
    assert ranking.fast_proba(tiny_model.classifier()) is None  # anything else goes through scikit-learn


# --------------------------------------------------------------------------------------------------
# feature files in S3; --points
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_features(s3, demo_sources) -> tuple[str, list[Path]]:
    """Two CoralNet sources' feature files uploaded to a moto bucket: (prefix URI, the local originals)."""
    import uuid

    bucket = f"predict-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(bucket)
    sources = sorted((demo_sources.dest / "coralnet").glob("s*/features"))[:2]
    local = []
    for folder in sources:
        s3.upload_dir(folder, bucket, f"feat/{folder.parent.name}")
        local += sorted(folder.glob("*.featurevector"))
    return f"s3://{bucket}/feat", local


def test_predict_feature_folder_in_s3(s3_features, run_folder: Path, tmp_path: Path) -> None:
    from mermaid_data.demo.features import read_feature_file

    prefix, local = s3_features
    result = _cli("predict", str(run_folder / "classifier.pkl"), "--features", prefix, "--output",
                  str(tmp_path / "out.csv"), "--top-k", "2", "--min-confidence", "0.6")
    assert result.exit_code == 0, result.output
    assert f"from {len(local)} feature files" in result.output and "names from the bundled taxonomy" in result.output
    frame = pl.read_csv(tmp_path / "out.csv", infer_schema_length=None)
    points = sum(len(read_feature_file(p)[0]) for p in local)
    assert frame.height == points and frame.columns[:3] == ["feature_file", "row", "col"]
    assert frame["feature_file"].str.starts_with(prefix + "/").all()
    assert frame["feature_file"].n_unique() == len(local)
    low = frame["low_confidence"]
    assert ((frame["confidence"] < 0.6) == low).all()
    assert frame.filter(low)["predicted_class_key"].null_count() == int(low.sum())
    assert frame.filter(~low)["predicted_class_key"].null_count() == 0
    bundled = TaxonomyNames.bundled()
    known = frame.filter(pl.col("top1_benthic_attribute_id").is_in(list(bundled.benthic_attributes)))
    assert known.height and known["top1_benthic_attribute_name"].null_count() == 0
    assert "top3_class_key" not in frame.columns

    # --points: by image and by file name, in the CSV's order
    rows, cols, _ = read_feature_file(local[0])
    stem = local[0].name.removesuffix(".featurevector")
    csv = tmp_path / "points.csv"
    csv.write_text("image,row,col\n" f"{stem[1:]},{rows[1]},{cols[1]}\n" f"{stem},{rows[0]},{cols[0]}\n")
    chosen = predict(str(run_folder / "classifier.pkl"), features=[prefix], points_csv=csv,
                     output=tmp_path / "chosen.parquet", top_k=1)
    picked = pl.read_parquet(chosen.output)
    assert picked.select("row", "col").rows() == [(rows[1], cols[1]), (rows[0], cols[0])]
    whole = frame.filter(pl.col("feature_file").str.ends_with("/" + local[0].name))
    expected = whole.filter((pl.col("row") == int(rows[0])) & (pl.col("col") == int(cols[0])))["top1_class_key"][0]
    assert picked["top1_class_key"][1] == expected


# --------------------------------------------------------------------------------------------------
# bad input: one line each, nothing written
# --------------------------------------------------------------------------------------------------


def test_missing_model_file_lists_the_nearest(run_folder: Path, tmp_path: Path, train_lake) -> None:
    result = _cli("predict", str(run_folder / "clasifier.pkl"), "--snapshot", train_lake.snapshot_id,
                  "--lake", str(train_lake.lake.uri), "--output", str(tmp_path / "out.parquet"))
    _one_line_error(result, "clasifier.pkl", "no such file", "nearest files: classifier.pkl")
    _nothing_written(tmp_path)


def test_feature_file_without_the_requested_points(s3_features, run_folder: Path, tmp_path: Path) -> None:
    prefix, local = s3_features
    csv = tmp_path / "points.csv"
    csv.write_text(f"file,row,col\n{local[0].name},0,1\n{local[0].name},4000,4001\n")
    result = _cli("predict", str(run_folder / "classifier.pkl"), "--features", prefix, "--points", str(csv),
                  "--output", str(tmp_path / "out.parquet"))
    _one_line_error(result, local[0].name, "no point at (row, col) = (0, 1)",
                    f"that {csv} asks for (row 2; 2 of 2 requested points missing")
    _nothing_written(tmp_path)


def test_points_csv_with_bad_rows(s3_features, run_folder: Path, tmp_path: Path) -> None:
    prefix, local = s3_features
    csv = tmp_path / "points.csv"
    csv.write_text(f"file,row,col\n{local[0].name},1,2\n{local[0].name},x,2\nnot-a-file.featurevector,1,2\n")
    result = _cli("predict", str(run_folder / "classifier.pkl"), "--features", prefix, "--points", str(csv),
                  "--output", str(tmp_path / "out.parquet"))
    _one_line_error(result, f"{csv}, row 3:", "row 'x'", "not a whole number", "(2 bad rows of 3)", "Fix: give one point")
    csv.write_text(f"image,row,col\n{local[0].name}x,1,2\n")
    result = _cli("predict", str(run_folder / "classifier.pkl"), "--features", prefix, "--points", str(csv),
                  "--output", str(tmp_path / "out.parquet"))
    _one_line_error(result, f"{csv}, row 2:", "is not one of the feature files given")
    csv.write_text("name,row,col\na,1,2\n")
    result = _cli("predict", str(run_folder / "classifier.pkl"), "--features", prefix, "--points", str(csv),
                  "--output", str(tmp_path / "out.parquet"))
    _one_line_error(result, "needs columns file (or image), row, col")
    _nothing_written(tmp_path)


def test_output_folder_must_exist(run_folder: Path, tmp_path: Path, train_lake) -> None:
    out = tmp_path / "missing" / "out.parquet"
    result = _cli("predict", str(run_folder / "classifier.pkl"), "--snapshot", train_lake.snapshot_id,
                  "--lake", str(train_lake.lake.uri), "--output", str(out))
    _one_line_error(result, "does not exist", "mkdir -p")
    assert not out.parent.exists()
    result = _cli("predict", str(run_folder / "classifier.pkl"), "--snapshot", train_lake.snapshot_id,
                  "--lake", str(train_lake.lake.uri), "--output", str(tmp_path / "out.txt"))
    _one_line_error(result, "cannot tell the output format", ".parquet or .csv")
    _nothing_written(tmp_path)


def test_points_csv_duplicates_and_missing_columns(tiny, tmp_path: Path) -> None:
    """Bug pinned: a --points row naming the same point twice was predicted twice instead of refused."""
    model, features = tiny
    csv = tmp_path / "points.csv"
    args = ("predict", str(model), "--features", str(features), "--points", str(csv), "--output",
            str(tmp_path / "out.parquet"))
    csv.write_text("file,row,col\ni1.featurevector,10,20\ni1.featurevector,30,40\ni1.featurevector,10,20\n")
    _one_line_error(_cli(*args), f"{csv}, row 4:", "'i1.featurevector' at (row, col) = (10, 20) is also row 2",
                    "Fix: give one point per row")
    csv.write_text("image,row\ni1,10\n")
    _one_line_error(_cli(*args), f"{csv}, row 1:", "needs columns file (or image), row, col; it has image, row")
    csv.write_text("image,row,col\n1,10,-20\n1,10,70000\n,10,20\n")
    _one_line_error(_cli(*args), f"{csv}, row 2:", "col -20 is outside 0..65535", "(3 bad rows of 3)")
    csv.write_text("image,row,col\n")
    _one_line_error(_cli(*args), str(csv), "has no rows")
    csv.write_text("image,row,col\n1,10,20\n")  # a good CSV: the image is the file name's number
    assert _cli(*args).exit_code == 0 and pl.read_parquet(tmp_path / "out.parquet")["top1_name"].to_list() == [
        "Acropora / Branching"]


def test_option_values_out_of_range(tiny, tmp_path: Path) -> None:
    model, features = tiny
    base = ("predict", str(model), "--features", str(features), "--output", str(tmp_path / "out.parquet"))
    for value in ("1.5", "-0.1", "nan"):
        _one_line_error(_cli(*base, "--min-confidence", value), f"--min-confidence {value}", "is not a probability",
                        "Fix: pass a value in [0, 1], e.g. 0.5")
    _one_line_error(_cli(*base, "--top-k", "0"), "--top-k 0 must be at least 1")
    _one_line_error(_cli(*base, "--snapshot", "snap-x"), "either --snapshot ID or --features")
    _one_line_error(_cli("predict", str(model), "--output", str(tmp_path / "out.parquet")),
                    "either --snapshot ID or --features")
    _one_line_error(_cli(*base, "--format", "json"), "--format 'json' is not one of parquet, csv")
    _nothing_written(tmp_path)


def test_output_that_cannot_be_written(tiny, tmp_path: Path) -> None:
    model, features = tiny
    base = ("predict", str(model), "--features", str(features))
    (tmp_path / "out.parquet").mkdir()
    _one_line_error(_cli(*base, "--output", str(tmp_path / "out.parquet")), "is a folder, not a file")
    (tmp_path / "out.csv").write_text("")
    _one_line_error(_cli(*base, "--output", str(tmp_path / "out.csv" / "x.parquet")), "is a file, not a folder")
    assert (tmp_path / "out.csv").read_text() == "" and not any((tmp_path / "out.parquet").iterdir())


# --------------------------------------------------------------------------------------------------
# the logged model from a real mlflow server
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registered(request: pytest.FixtureRequest, train_lake, tmp_path_factory: pytest.TempPathFactory):
    server: MLflowServer = session_mlflow_server(request)
    runner = MLflowTrainingRunner(
        training_options=TrainingOptions(epochs=2),
        mlflow_options=MLflowOptions(experiment_name="predict", model_name="predict-model", tracking_uri=server.uri),
        snapshot_id=train_lake.snapshot_id, lake=str(train_lake.lake.uri),
        cache_dir=tmp_path_factory.getbasetemp() / "predict-cache")
    runner.run()
    return server, runner.result


def test_pyfunc_returns_names_for_float32_and_float64(registered, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.pyfunc
    import mlflow.sklearn

    server, result = registered
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    uri = f"models:/{result.registered_model}/{result.registered_version}"
    model = mlflow.pyfunc.load_model(uri)
    assert model.metadata.signature.inputs is None and model.metadata.signature.params is not None
    x32 = np.asarray(result.example_x, dtype=np.float32)
    out32 = model.predict(x32)
    out64 = model.predict(x32.astype(np.float64))
    assert out32.equals(out64)  # float64 is accepted and cast to the float32 the model was trained on
    assert len(out32) == len(x32) and {"top1_class_key", "top3_score"} <= set(out32.columns)
    assert out32["top1_benthic_attribute_name"].notna().all() and out32["predicted_name"].notna().all()
    assert not out32["predicted_name"].str.contains("::").any()
    few = model.predict(x32.tolist(), params={"top_k": 1, "min_confidence": 0.999999})
    assert "top2_class_key" not in few.columns and few["low_confidence"].all()
    assert few["predicted_class_key"].isna().all() and few["top1_class_key"].notna().all()

    # the sklearn flavor still loads the same classifier, and agrees
    classifier = mlflow.sklearn.load_model(uri)
    best = classifier.classes_[classifier.predict_proba(x32).argmax(axis=1)]
    assert list(best) == out32["top1_class_key"].tolist()
    assert np.allclose(classifier.predict_proba(x32).max(axis=1), out32["confidence"].to_numpy())


def test_predict_with_registered_and_run_uris(registered, train_lake, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    server, result = registered
    client = MlflowClient(tracking_uri=server.uri)
    client.set_registered_model_alias(result.registered_model, "champion", result.registered_version)
    lake = str(train_lake.lake.uri)
    outputs, printed = [], []
    for i, uri in enumerate((f"models:/{result.registered_model}@champion", f"runs:/{result.run_id}/classifier.pkl")):
        (tmp_path / "ok").mkdir(exist_ok=True)
        out = tmp_path / "ok" / f"out{i}.parquet"
        cli = _cli("predict", uri, "--snapshot", train_lake.snapshot_id, "--lake", lake, "--output", str(out),
                   "--tracking-uri", server.uri)
        assert cli.exit_code == 0, cli.output
        outputs.append(pl.read_parquet(out))
        printed.append(cli.output)
    # the alias resolves to the registered version and its run; all three name the same classifier
    assert f"models:/{result.registered_model}/{result.registered_version} (run {result.run_id})" in printed[0]
    assert outputs[0].equals(outputs[1])

    wrong = result.registered_model.replace("predict-model", "predict-modle")
    cli = _cli("predict", f"models:/{wrong}/1", "--snapshot", train_lake.snapshot_id, "--lake", lake, "--output",
               str(tmp_path / "out.parquet"), "--tracking-uri", server.uri)
    _one_line_error(cli, f"no registered model '{wrong}'", "nearest models:", result.registered_model)
    cli = _cli("predict", f"models:/{result.registered_model}/99", "--snapshot", train_lake.snapshot_id, "--lake",
               lake, "--output", str(tmp_path / "out.parquet"), "--tracking-uri", server.uri)
    _one_line_error(cli, "has no version '99'", f"versions: {result.registered_version}")
    cli = _cli("predict", f"runs:/{result.run_id}/modle", "--snapshot", train_lake.snapshot_id, "--lake", lake,
               "--output", str(tmp_path / "out.parquet"), "--tracking-uri", server.uri)
    _one_line_error(cli, "has no artifact 'modle'", "nearest artifacts: model")  # the run's logged model
    _nothing_written(tmp_path)


def test_predict_with_the_runs_model_uri(registered, train_lake, tmp_path: Path) -> None:
    """Bug pinned: ``runs:/<run id>/model``, the URI load.py's own fix line suggests, said the run has no artifact."""
    server, result = registered
    cli = _cli("predict", f"runs:/{result.run_id}/model", "--snapshot", train_lake.snapshot_id, "--lake",
               str(train_lake.lake.uri), "--output", str(tmp_path / "out.parquet"), "--tracking-uri", server.uri)
    assert cli.exit_code == 0, cli.output
