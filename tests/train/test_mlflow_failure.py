"""MLflow dying mid-logging, and what killed trainers leave: real servers and processes, killed by pid."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from mermaid_train.leftovers import OWNER_FILE, write_owner
from mermaid_train.tracking.mlflow import owner_tag
from mermaid_train.tracking.pending import PENDING_FILE
from typer.testing import CliRunner

from tests.support.cli import BIN
from tests.support.mlflow_server import MLflowServer

PROGRESS = "[mermaid] "


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "250", "TMPDIR": str(tmp_path / "tmp"),
           "MERMAID_TRAIN_CACHE_DIR": str(tmp_path / "cache"), **extra}
    for name in ("MERMAID_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_NAME", "MERMAID_MODEL_NAME", "MERMAID_RUNS_DIR"):
        env.pop(name, None)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return env


def _wait_for_line(process: subprocess.Popen, text: str, stream: str = "stderr", timeout: float = 300) -> list[str]:
    """Read ``stream`` line by line until one contains ``text``; return the lines read."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    pipe = getattr(process, stream)
    while time.monotonic() < deadline:
        line = pipe.readline()
        if not line:
            raise AssertionError(f"the process ended before {text!r}:\n" + "".join(lines) + process.stderr.read())
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} within {timeout}s:\n" + "".join(lines))


def _status(db: Path, run_id: str) -> str:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT status FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()[0]


# --------------------------------------------------------------------------------------------------
# 5. the tracking server dies while a trained run is being logged
# --------------------------------------------------------------------------------------------------


def test_server_killed_mid_logging_keeps_the_model_in_one_line_and_in_bounded_time(
        train_lake, mlflow_server: MLflowServer, tmp_path: Path) -> None:
    """Bug pinned: with the MLflow server killed mid-logging, training hung 12.6 minutes (MLflow's default
    retries), printed a 1,381-line traceback and deleted the trained model."""
    dying = MLflowServer(tmp_path / "dying")
    dying.start()
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [str(BIN / "mermaid-train"), "run", "--snapshot", train_lake.snapshot_id, "--lake", str(train_lake.lake.uri),
         "--epochs", "1", "--runs-dir", str(runs), "--experiment", "dies", "--model-name", "dies"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(tmp_path, MLFLOW_TRACKING_URI=dying.uri))
    try:
        read = _wait_for_line(process, f"{PROGRESS}log to MLflow: artifacts")
        dying.kill()  # by its process group id, mid-logging
        killed_at = time.monotonic()
        out, err = process.communicate(timeout=300)
        elapsed = time.monotonic() - killed_at
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        dying.stop()
    stderr = "".join(read) + err
    assert process.returncode == 2, stderr
    assert elapsed < 60, elapsed  # MLflow's own retries (7, backoff 2) took 12.6 minutes
    assert "Traceback" not in stderr + out
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(PROGRESS)]
    assert len(lines) == 1 and lines[0].startswith(f"error: {dying.uri}: logging to MLflow failed at "), stderr
    assert "(the server does not answer: " in lines[0] and "Max retries" not in lines[0], lines[0]
    print(lines[0])  # `pytest -rP` shows it: docs/training.md quotes this line
    kept = sorted(runs.glob("dies-*"))
    assert len(kept) == 1, list(runs.iterdir()) if runs.exists() else "no runs folder"
    folder = kept[0]
    assert f"kept in {folder} (classifier: {folder / 'classifier.pkl'})" in lines[0]
    assert f"Fix: once the tracking server answers, log them with `mermaid-train log {folder}`" in lines[0]
    for name in ("classifier.pkl", "valresult.json", "train_summary.yaml", "metrics/metrics.json",
                 "annotations_val.csv", "snapshot/manifest.json", PENDING_FILE):
        assert (folder / name).is_file(), name
    assert not list((tmp_path / "tmp").glob("mermaid-train-*"))  # the scratch folder is gone
    assert OWNER_FILE not in os.listdir(folder)
    run_id = lines[0].split(" run ", 1)[1].split()[0]
    assert _status(tmp_path / "dying" / "mlflow.db", run_id) == "RUNNING"  # the server could not be told

    # the orphaned run is marked FAILED by `cleanup` (its trainer is dead), here straight on the server's store
    store = f"sqlite:///{tmp_path / 'dying' / 'mlflow.db'}"
    cleaned = subprocess.run([str(BIN / "mermaid-train"), "cleanup", "--tracking-uri", store, "--experiment", "dies",
                              "--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(runs)],
                             capture_output=True, text=True, env=_env(tmp_path), timeout=300, check=False)
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"marked MLflow run {run_id} FAILED" in cleaned.stdout and "View run" not in cleaned.stdout
    assert _status(tmp_path / "dying" / "mlflow.db", run_id) == "FAILED"
    assert (folder / PENDING_FILE).is_file()  # the kept run folder is not a leftover

    # logging it while the server is still down: one line, the folder unchanged
    cli = __import__("mermaid_train.cli", fromlist=["app"]).app
    down = CliRunner().invoke(cli, ["log", str(folder)])
    assert down.exit_code == 2 and f"{dying.uri}: cannot reach the MLflow tracking server" in down.output, down.output
    assert "Traceback" not in down.output and (folder / PENDING_FILE).is_file()

    # later, to a server that answers: the kept folder is logged as a run with its model
    from mlflow import MlflowClient

    out = CliRunner().invoke(__import__("mermaid_train.cli", fromlist=["app"]).app,
                             ["log", str(folder), "--tracking-uri", mlflow_server.uri])
    assert out.exit_code == 0, out.output
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    runs_found = client.search_runs([client.get_experiment_by_name("dies").experiment_id])
    assert len(runs_found) == 1 and runs_found[0].info.status == "FINISHED"
    logged = runs_found[0]
    assert logged.data.params["snapshot_id"] == train_lake.snapshot_id and "accuracy" in logged.data.metrics
    assert {a.path for a in client.list_artifacts(logged.info.run_id)} >= {"classifier.pkl", "train_summary.yaml"}
    assert client.search_model_versions("name='dies'")[0].run_id == logged.info.run_id
    assert not (folder / PENDING_FILE).exists()
    again = CliRunner().invoke(__import__("mermaid_train.cli", fromlist=["app"]).app, ["log", str(folder)])
    assert again.exit_code == 2 and "no run waiting to be logged" in again.output


# --------------------------------------------------------------------------------------------------
# 6. leftovers of killed trainers: reclaimed by the next run and by `cleanup`, never a live one's
# --------------------------------------------------------------------------------------------------

BLOCKING_CHILD = textwrap.dedent('''
    import sys, time
    from mermaid_data.progress import LineProgress
    from mermaid_train import MLflowOptions, MLflowTrainingRunner, TrainingOptions, TrainingRunner

    at, kind, snapshot, lake, cache, runs, uri = sys.argv[1:8]

    class Blocking(LineProgress):
        """Stops for good when the run reaches ``at`` (the test kills the process there)."""

        def _maybe(self, text):
            if at in text:
                print("BLOCKED", flush=True)
                time.sleep(600)

        def task(self, description, total=None):
            self._maybe(description)
            return super().task(description, total)

        def log(self, message):
            super().log(message)
            self._maybe(message)

    common = dict(snapshot_id=snapshot, lake=lake, cache_dir=cache, runs_dir=runs, progress=Blocking())
    if kind == "mlflow":
        runner = MLflowTrainingRunner(training_options=TrainingOptions(epochs=1), mlflow_options=MLflowOptions(
            experiment_name="orphans", model_name="orphan", tracking_uri=uri), **common)
    else:
        runner = TrainingRunner(training_options=TrainingOptions(epochs=1), **common)
    runner.run()
''')


def _killed_at(tmp_path: Path, at: str, kind: str, train_lake, uri: str, *, cache: Path, temp: Path) -> None:
    """Run a trainer (cache folder ``cache``, temp folder ``temp``) until it reaches ``at``, then kill -9 it
    (by pid) and reap it."""
    script = tmp_path / "child.py"
    script.write_text(BLOCKING_CHILD)
    temp.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, str(script), at, kind, train_lake.snapshot_id, str(train_lake.lake.uri),
         str(cache), str(tmp_path / "runs"), uri],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**_env(tmp_path), "TMPDIR": str(temp)})
    try:
        _wait_for_line(process, "BLOCKED", stream="stdout")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)


def test_the_next_run_reclaims_what_killed_trainers_left(train_lake, mlflow_server: MLflowServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug pinned: a killed pack left `packed/<id>/.tmp-*` (1.8 GB once), a killed trainer a
    `mermaid-train-*` folder in the temp directory and a RUNNING MLflow run without a model; nothing ever
    reclaimed them. The next run does, and leaves a live process's alone."""
    from mermaid_train import MLflowOptions, MLflowTrainingRunner, TrainingOptions
    from mlflow import MlflowClient

    # each killed trainer's start would reclaim the other's leftovers (as designed), so the one killed
    # while logging packs in its own cache and the one killed while packing has its own temp folder
    _killed_at(tmp_path, "log to MLflow: artifacts", "mlflow", train_lake, mlflow_server.uri,
               cache=tmp_path / "cache-logged", temp=tmp_path / "tmp")
    _killed_at(tmp_path, "pack point features", "plain", train_lake, "", cache=tmp_path / "cache",
               temp=tmp_path / "tmp-packing")
    packs = sorted((tmp_path / "cache" / "packed").glob("*/.tmp-*"))
    scratch = sorted((tmp_path / "tmp").glob("mermaid-train-*"))
    assert len(packs) == 1 and len(scratch) == 1, (packs, scratch)
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    experiment = client.get_experiment_by_name("orphans").experiment_id
    (orphan,) = client.search_runs([experiment])
    assert orphan.info.status == "RUNNING" and not client.list_artifacts(orphan.info.run_id, "model")

    # a live process's (this test's) scratch folders and run, which must survive
    live_pack = packs[0].parent / ".tmp-live-0123"
    live_scratch = tmp_path / "tmp" / "mermaid-train-live"
    for folder in (live_pack, live_scratch):
        folder.mkdir()
        write_owner(folder, "a live trainer")
    live_run = client.create_run(experiment, run_name="live", tags={"mermaid.owner": owner_tag()}).info.run_id

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    runner = MLflowTrainingRunner(training_options=TrainingOptions(epochs=1), mlflow_options=MLflowOptions(
        experiment_name="orphans", model_name="next", tracking_uri=mlflow_server.uri),
        snapshot_id=train_lake.snapshot_id, lake=str(train_lake.lake.uri), cache_dir=tmp_path / "cache",
        runs_dir=tmp_path / "runs")
    runner.run()
    assert not packs[0].exists() and not scratch[0].exists()
    assert live_pack.is_dir() and live_scratch.is_dir()
    assert client.get_run(orphan.info.run_id).info.status == "FAILED"
    assert "died while logging" in client.get_run(orphan.info.run_id).data.tags["mermaid.failure"]
    assert client.get_run(live_run).info.status == "RUNNING"
    assert client.get_run(runner.result.run_id).info.status == "FINISHED"
    client.set_terminated(live_run, "KILLED")


DEAD_OWNER = ("import os, sys\nfrom mermaid_train.leftovers import write_owner\n"
              "for folder in sys.argv[1:]:\n    os.makedirs(folder)\n    write_owner(folder, 'a trainer')\n"
              "os.kill(os.getpid(), 9)\n")


def test_cleanup_command_removes_dead_processes_leftovers_only(mlflow_server: MLflowServer, tmp_path: Path) -> None:
    """`mermaid-train cleanup`: the documented entry point; a real process that died owns the leftovers."""
    from mlflow import MlflowClient

    dead = [tmp_path / "cache" / "packed" / "snap-0" / ".tmp-k-dead", tmp_path / "tmp" / "mermaid-train-dead",
            tmp_path / "runs" / ".run-1.partial"]
    (tmp_path / "tmp").mkdir()
    child = subprocess.run([sys.executable, "-c", DEAD_OWNER, *map(str, dead)], env=_env(tmp_path), check=False)
    assert child.returncode == -signal.SIGKILL and all((d / OWNER_FILE).is_file() for d in dead)
    (dead[0] / "X.f32").write_bytes(b"\0" * 4096)
    live = tmp_path / "cache" / "packed" / "snap-0" / ".tmp-k-live"
    live.mkdir()
    write_owner(live, "a live trainer")
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    experiment = client.create_experiment("cleanup-cmd")
    owner = json.loads((dead[1] / OWNER_FILE).read_text())
    orphan = client.create_run(experiment, tags={"mermaid.owner": json.dumps(
        {k: owner[k] for k in ("pid", "host", "boot_id", "started", "since")})}).info.run_id
    alive = client.create_run(experiment, tags={"mermaid.owner": owner_tag()}).info.run_id

    result = subprocess.run(
        [str(BIN / "mermaid-train"), "cleanup", "--cache-dir", str(tmp_path / "cache"), "--runs-dir",
         str(tmp_path / "runs"), "--tracking-uri", mlflow_server.uri, "--experiment", "cleanup-cmd"],
        capture_output=True, text=True, env=_env(tmp_path), timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert not any(d.exists() for d in dead) and live.is_dir()
    for folder in dead:
        assert f"removed {folder} (left by a dead process)" in result.stdout
    assert f"marked MLflow run {orphan} FAILED" in result.stdout and f"kept {live}" in result.stdout
    assert client.get_run(orphan).info.status == "FAILED" and client.get_run(alive).info.status == "RUNNING"
    client.set_terminated(alive, "KILLED")
