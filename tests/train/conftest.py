"""Fixtures for the training tests: the tiny demo ingested once, one snapshot of its most frequent classes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from mermaid_data.lake import Lake
from mermaid_data.snapshot import SnapshotSpec

from tests.support.mlflow_server import MLflowServer, session_mlflow_server, session_train_lake

TRAIN_CLASSES = 6  # the tiny demo's most frequent classes: enough points each to train on


@dataclass(frozen=True)
class TrainLake:
    """A lake holding the tiny demo (seed 7), and one snapshot of MERMAID + every CoralNet source."""

    lake: Lake
    snapshot_id: str
    root: Path


@pytest.fixture(scope="session")
def train_lake(demo_sources, ingest_demo, tmp_path_factory: pytest.TempPathFactory) -> TrainLake:
    """Read-only: tests may add snapshots and caches under their own tmp_path, never re-ingest."""
    root = tmp_path_factory.mktemp("train-lake")
    ingest_demo(root / "lake", demo_sources.dest)
    lake = Lake.open(str(root / "lake"))
    classes = lake.sql(
        "SELECT benthic_attribute_id AS ba, growth_form_id AS gf, count(*) AS n FROM annotations_mapped "
        "GROUP BY ALL ORDER BY n DESC, ba, gf LIMIT ?", [TRAIN_CLASSES])
    (root / "include.csv").write_text(
        "ba_id,gf_id\n" + "".join(f"{b},{g or ''}\n" for b, g in zip(classes["ba"], classes["gf"])))
    sources = lake.sql("SELECT DISTINCT source_id FROM annotations_stored WHERE site = 'coralnet'")["source_id"]
    (root / "sources.csv").write_text("id\n" + "".join(f"{s}\n" for s in sorted(sources.to_list(), key=int)))
    snap = lake.create_snapshot(SnapshotSpec(coralnet_sources_csv=root / "sources.csv",
                                             included_labels_csv=root / "include.csv", name="train-tests"))
    return TrainLake(lake, snap.snapshot_id, root)


@pytest.fixture(scope="session")
def train_packed(train_lake: TrainLake, tmp_path_factory: pytest.TempPathFactory):
    """The train_lake snapshot split by image (seed 0) and packed once. Read-only."""
    from mermaid_train.features import FeatureCache, pack
    from mermaid_train.split import load_snapshot_rows, split_snapshot

    work = tmp_path_factory.mktemp("train-work")
    sid, _manifest, rows = load_snapshot_rows(train_lake.lake, train_lake.snapshot_id)
    split = split_snapshot(rows, ref_val_ratios=(0.15, 0.2), seed=0)
    packed = pack(split, snapshot_id=sid, split_key="images-seed0", cache=FeatureCache(work / "cache"),
                  lake=train_lake.lake, work_dir=work, missing_allowed_pct=5.0)
    return split, packed


@pytest.fixture(scope="session")
def mlflow_server(request: pytest.FixtureRequest) -> MLflowServer:
    """One real `mlflow server` for the session (``tests.support.mlflow_server``)."""
    return session_mlflow_server(request)


@pytest.fixture(scope="session")
def runner_lake(request: pytest.FixtureRequest) -> Lake:
    """The lake the MLflow runner tests train from (``session_train_lake``)."""
    return session_train_lake(request)
