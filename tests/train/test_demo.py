"""`make demo` end to end on the small demo: a model that learned, a summary in words, next steps that run.

Runs ``run_demo`` (what ``mermaid-train demo`` / ``make demo`` run) in a fresh folder with MLflow's default
SQLite store in the workdir, then executes every printed next step from the folder it was printed in.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from mermaid_data.lake import Lake
from mermaid_train.demo import SEED_EXCLUSIONS_CSV, SEED_ROLLUPS_CSV, run_demo
from rich.console import Console

from tests.support.seed_docs import seed_exclusions_csv, seed_rollups_csv

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    here = tmp_path_factory.mktemp("make-demo")
    old = Path.cwd()
    saved = {k: os.environ.pop(k) for k in ("MLFLOW_TRACKING_URI", "MERMAID_LAKE_URI") if k in os.environ}
    os.chdir(here)
    out = StringIO()
    try:
        result = run_demo(here / "demo-work", scale="small", seed=0, console=Console(file=out, width=200))
    finally:
        os.chdir(old)
        os.environ.update(saved)
    return here, result, out.getvalue()


def test_demo_model_learned(demo) -> None:
    """Bug pinned: the demo's model scoring balanced accuracy 0.05 over 203 classes (it told nothing)."""
    _, result, text = demo
    assert result.balanced_accuracy >= 0.5, text
    assert 10 <= result.classes <= 60
    assert f"balanced accuracy {result.balanced_accuracy:.3f}" in text


def test_demo_summary_says_what_the_recipe_kept_and_dropped(demo) -> None:
    """Bug pinned: a summary that did not say what the recipe was or what it dropped."""
    here, result, text = demo
    summary = text.split("Demo summary", 1)[1]
    assert "rolled up to depth 2 of the MERMAID tree" in summary and "growth forms dropped" in summary
    assert "classes: fewer than 100 annotations after the rollup" in summary
    assert "CoralNet label not in MERMAID's mapping" in summary
    lake = Lake.open(result.lake)
    include = (here / "demo-work" / "recipe" / "include.csv").read_text().splitlines()
    assert len(include) - 1 == lake.sql(
        f"SELECT count(DISTINCT benthic_attribute_id) FROM snapshot('{result.snapshot_id}')").item()


def test_demo_seed_examples_are_the_documentation_s(demo) -> None:
    """Bug pinned: the demo's copies of the seed examples drifting from docs/training.md."""
    here, result, _ = demo
    assert SEED_ROLLUPS_CSV == seed_rollups_csv() and SEED_EXCLUSIONS_CSV == seed_exclusions_csv()
    assert (here / "demo-work" / "seed-examples" / "coral_rollups.csv").read_text() == seed_rollups_csv()
    assert result.seed_rollup_snapshot_id != result.seed_exclusion_snapshot_id


def test_demo_next_steps_run_as_printed(demo) -> None:
    """Bug pinned: next steps that named paths or IDs that do not work from the folder they were printed in."""
    here, result, text = demo
    printed = [line.strip() for line in text.split("Next steps (from this folder):", 1)[1].splitlines() if line.strip()]
    assert tuple(printed) == result.next_steps
    assert all(str(here) not in step for step in printed if "mlflow ui" not in step)  # relative paths
    for step in printed:
        if "mlflow ui" in step:
            continue  # a server that runs until stopped
        assert step.startswith("uv run ")
        argv = shlex.split(step)[2:]
        argv[0] = str(BIN / argv[0])
        done = subprocess.run(argv, cwd=here, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, (step, done.stdout[-2000:], done.stderr[-2000:])
