"""README's "Your first hour" runs as written, command by command, on the tiny demo.

The block is taken from README.md and run by bash in an empty folder, with `uv run` standing for the
installed commands of this environment (what `uv run` resolves them to in the repository).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


def first_hour_block() -> str:
    section = README.read_text(encoding="utf-8").split("## Your first hour", 1)[1].split("\n## ", 1)[0]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def test_first_hour_block_is_the_whole_loop() -> None:
    block = first_hour_block()
    for command in ("demo-sources", "ingest", "sql", "history", "spec sources", "spec rollups", "spec labels",
                    "snapshot create", "snapshot list", "snapshot show", "snapshot rebuild", "mermaid-train run",
                    "mermaid-train evaluate", "mermaid-train predict"):
        assert command in block, command


def test_first_hour_runs_as_written(tmp_path: Path) -> None:
    """Bug pinned: a README walk-through with commands that do not work as printed."""
    script = tmp_path / "first_hour.sh"
    script.write_text(
        "set -euo pipefail\n"
        # `uv run [--frozen] CMD ...` -> this environment's CMD
        'uv() { [ "$1" = run ] && shift; [ "${1:-}" = --frozen ] && shift; "$@"; }\n'
        "trap 'echo \"FAILED: $BASH_COMMAND\" >&2' ERR\n"
        + first_hour_block(),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MERMAID_", "MLFLOW_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["MERMAID_TRAIN_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    out = done.stdout
    assert "identical:" in out  # snapshot rebuild
    assert "accuracy" in out and (tmp_path / "first-hour" / "runs").is_dir()
    assert (tmp_path / "first-hour" / "unmapped.csv").read_text().startswith("site,")
    # train -> evaluate -> predict: the evaluation of the val set is the run's own figures, every point predicted
    import polars as pl
    import yaml

    (run,) = (tmp_path / "first-hour" / "runs").iterdir()
    (evaluation,) = (tmp_path / "first-hour" / "evaluations").iterdir()
    trained = yaml.safe_load((run / "train_summary.yaml").read_text())
    scored = yaml.safe_load((evaluation / "evaluation.yaml").read_text())
    assert scored["counts"]["scored"] == trained["split"]["annotations"]["val"] > 0
    assert scored["metrics"]["accuracy"] == pytest.approx(trained["metrics"]["accuracy"], abs=1e-5)
    assert "report.html" in {p.name for p in evaluation.iterdir()}
    predictions = pl.read_csv(tmp_path / "first-hour" / "predictions.csv", infer_schema=False)
    assert predictions.height == scored["snapshot"]["rows"] and predictions["top1_name"].null_count() == 0
    assert "Traceback" not in done.stderr
