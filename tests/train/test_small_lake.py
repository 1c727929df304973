"""The seed's first example on a small MERMAID-only lake: 40 images, 1,000 annotations."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from mermaid_data.demo import generate_demo_sources
from mermaid_data.lake import Lake
from mermaid_train.split import load_snapshot_rows


def test_seed_first_example_trains_on_forty_mermaid_images(ingest_demo, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug pinned: ``TrainingRunner()`` on a MERMAID-only lake of 40 images failed: each image's set was
    drawn by an independent hash and ref got none ("train 875, ref 0, val 125")."""
    demo = generate_demo_sources(tmp_path / "demo", annotations=4_000, seed=7)
    assert demo.mermaid_images == 40
    ingest_demo(tmp_path / "lake", demo.dest, coralnet=None)
    for name in ("MERMAID_RUNS_DIR", "MERMAID_MISSING_FEATURES_ALLOWED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MERMAID_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.setenv("MERMAID_TRAIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)

    from mermaid_classifier.pyspacer.train import TrainingRunner

    runner = TrainingRunner()
    return_msg, model_loc = runner.run()

    assert Path(model_loc).is_file() and 0 <= return_msg.acc <= 1
    # the snapshot's images (40, less any without a feature file): ref and val get round(n * 0.1) each
    _sid, _manifest, rows = load_snapshot_rows(Lake.open(str(tmp_path / "lake")), runner.result.snapshot_id)
    n = rows.select("site", "source_id", "image_id").unique().height
    assert 38 <= n <= 40
    split = pl.read_parquet(runner.result.out_dir / "split.parquet")
    sets = dict(split.unique(["site", "source_id", "image_id"]).group_by("split").len().iter_rows())
    assert sets["ref"] == sets["val"] == round(n * 0.1) == 4, sets  # no image lost all its points to rare classes
    assert runner.result.counts["ref"] > 0 and runner.result.counts["val"] > 0  # points of rare classes dropped
