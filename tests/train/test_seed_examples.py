"""Every Python example of docs/training.md's "The seed examples" runs as written.

The examples are the seed documentation's, verbatim, importing from ``mermaid_classifier.pyspacer.train``.
They run in a working directory holding the CSVs they name: the rollup and exclusion CSVs exactly as the
documentation quotes them (real MERMAID ids, which the demo lake has), the others written with ids of the
tiny demo lake (its CoralNet source ids are made up), with ``MERMAID_LAKE_URI``
pointing at that lake and ``MLFLOW_TRACKING_URI`` at the session's real MLflow server.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mermaid_data.lake import Lake

from tests.support.mlflow_server import (
    MLflowServer,
    write_sources_csv,
)
from tests.support.seed_docs import seed_exclusions_csv, seed_python_examples, seed_rollups_csv

EXAMPLES = seed_python_examples()


@pytest.fixture(scope="session")
def seed_dir(runner_lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory of the examples, with their CSVs (demo-lake IDs, the seed's layouts)."""
    root = tmp_path_factory.mktemp("seed")
    sample = write_sources_csv(runner_lake, root / "sources" / "sample.csv", limit=3)
    ids = sample.read_text().split()[1:]
    labels = root / "labels"
    labels.mkdir()
    # the rollup and exclusion examples' CSVs, verbatim: their real MERMAID ids are in the demo lake
    (labels / "coral_rollups.csv").write_text(seed_rollups_csv())
    (labels / "exclusions.csv").write_text(seed_exclusions_csv())
    rollup_header = "from_ba_id,from_ba_name,from_gf_id,from_gf_name,to_ba_id,to_ba_name,to_gf_id,to_gf_name\n"
    label_header = "ba_id,ba_name,gf_id,gf_name\n"
    # the full example: CoralNet sample sources only, growth forms dropped, then rolled up and included
    bas = runner_lake.sql(
        "SELECT a.benthic_attribute_id AS ba, b.name AS ba_name, count(*) AS n FROM annotations_mapped a "
        "JOIN benthic_attributes b ON b.id = a.benthic_attribute_id "
        f"WHERE a.site = 'coralnet' AND a.source_id IN ({', '.join(repr(i) for i in ids)}) "
        "GROUP BY ALL ORDER BY n DESC, ba").rows()
    (labels / "rollups.csv").write_text(
        rollup_header + f"{bas[8][0]},{bas[8][1]},,,{bas[0][0]},{bas[0][1]},,\n")
    (labels / "inclusions.csv").write_text(label_header + "".join(f"{b[0]},{b[1]},,\n" for b in bas[:8]))
    return root


@pytest.fixture(autouse=True)
def _seed_env(monkeypatch: pytest.MonkeyPatch, seed_dir: Path, runner_lake: Lake, mlflow_server: MLflowServer,
              tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in ("MERMAID_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_NAME", "MERMAID_MODEL_NAME",
                 "MERMAID_MISSING_FEATURES_ALLOWED", "MERMAID_RUNS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MERMAID_LAKE_URI", str(runner_lake.uri))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("MERMAID_TRAIN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "seed-cache"))
    monkeypatch.chdir(seed_dir)


def test_the_section_has_the_seed_examples() -> None:
    assert len(EXAMPLES) == 6
    assert all("from mermaid_classifier.pyspacer.train import" in code for code in EXAMPLES)
    assert sum(code.count(".run()") for code in EXAMPLES) == 8


@pytest.mark.parametrize("index", range(len(EXAMPLES)), ids=[f"example{i + 1}" for i in range(len(EXAMPLES))])
def test_seed_example_runs_as_written(index: int, mlflow_server: MLflowServer, seed_dir: Path) -> None:
    from mlflow import MlflowClient

    code = EXAMPLES[index]
    namespace: dict = {}
    exec(compile(code, f"docs/training.md example {index + 1}", "exec"), namespace)  # noqa: S102
    runner = namespace["runner"]
    result = runner.result
    assert result is not None and 0 <= result.headline["accuracy"] <= 1
    assert result.snapshot_id.startswith("snap-")
    if "return_msg" in namespace:  # TrainingRunner: no MLflow, a run folder under ./runs
        assert Path(namespace["model_loc"]).is_file()
        assert Path(namespace["model_loc"]).parent.parent == seed_dir / "runs"
        assert namespace["return_msg"].acc == pytest.approx(result.headline["accuracy"])
        assert result.run_id is None
        assert len(result.ref_accs) == 10  # the documented default epochs
        return
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["snapshot_id"] == result.snapshot_id
    experiment = client.get_experiment(run.info.experiment_id).name
    # registered under the model name (given, or derived from the recipe as upstream does: lineage.py); the
    # date/time goes on the run's name
    assert result.registered_model == _expected_model_name(code)
    assert re.fullmatch(re.escape(result.registered_model) + r"-\d{8}-\d{6}", run.info.run_name), run.info.run_name
    if "My Experiment 1" in code:
        assert experiment == "My Experiment 1"
        assert params["dataset.include_mermaid"] == "False"
        assert params["dataset.drop_growthforms"] == "True"
        assert params["dataset.ref_val_ratios"] == "0.075,0.125"
        assert params["dataset.annotation_limit"] == "5000"
        assert params["training.epochs"] == "5"
        assert params["mlflow.annotations_to_log"] == "all"
        assert "annotations_all.csv" in {a.path for a in client.list_artifacts(result.run_id)}
        assert len(client.get_metric_history(result.run_id, "ref_accuracy")) == 5
    else:
        assert experiment == "mermaid-classifier"  # the setting's default
    if "CustomModelNameHere" in code:  # the example's first two runs (the third is the last `runner`)
        versions = client.search_model_versions("name = 'CustomModelNameHere'")
        assert len(versions) == 1 and versions[0].run_id != result.run_id
        quick = client.search_runs([run.info.experiment_id] if experiment == "mermaid-classifier" else
                                   [client.get_experiment_by_name("mermaid-classifier").experiment_id],
                                   "params.`dataset.annotation_limit` = '2000'")
        assert len(quick) == 1 and quick[0].data.params["training.epochs"] == "2"
        assert quick[0].data.params["model_name"] == "AllLabels-AnnoLimit2000"
        assert [v.run_id for v in client.search_model_versions("name = 'AllLabels-AnnoLimit2000'")] == [
            quick[0].info.run_id]
        assert len(client.get_metric_history(quick[0].info.run_id, "ref_accuracy")) == 2
    if "coral_rollups.csv" in code:
        assert params["dataset.label_rollup_spec_csv"] == "labels/coral_rollups.csv"
    if "excluded_labels_csv='labels/exclusions.csv'" in code and "# excluded" not in code:
        assert params["dataset.excluded_labels_csv"] == "labels/exclusions.csv"
    if "coralnet_sources_csv='sources/sample.csv'" in code and "include_mermaid=False" not in code:
        assert params["dataset.coralnet_sources_csv"] == "sources/sample.csv"
        assert params["dataset.include_mermaid"] == "True"


def _expected_model_name(code: str) -> str:
    """The name the example's last run registers: its model_name, else upstream's name of its recipe."""
    if "model_name='my-model'" in code:
        return "my-model"
    if "coral_rollups.csv" in code:
        return "AllLabels-Rollupcoralrollups"
    if "excluded_labels_csv='labels/exclusions.csv'" in code:
        return "Excludeexclusions"
    if "coralnet_sources_csv='sources/sample.csv'" in code:
        return "AllLabels-sample"
    return "AllLabels"
