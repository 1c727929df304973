"""A real ``mlflow server`` on 127.0.0.1 (free port) for tests: SQLite backend, served artifacts.

Started with ``subprocess.Popen`` in its own process group (the server forks uvicorn workers), ready
when ``/health`` answers, stopped by its own process group id (SIGTERM, then SIGKILL) — never by name.
Startup takes ~10 s, so tests share one per session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar

import pytest

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MLflowServer:
    """``start()`` -> tracking URI (``http://127.0.0.1:<port>``); ``stop()`` ends the process group."""

    def __init__(self, root: str | os.PathLike[str], *, startup_timeout_s: float = 180) -> None:
        self.root = Path(root)
        self.startup_timeout_s = startup_timeout_s
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def uri(self) -> str:
        if self.port is None:
            raise RuntimeError("MLflowServer is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def start(self) -> str:
        if self._process is not None:
            return self.uri
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        command = [str(mlflow_bin)] if mlflow_bin.exists() else [sys.executable, "-m", "mlflow"]
        command += [
            "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.root / "artifacts"),
        ]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env.pop("MLFLOW_TRACKING_URI", None)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                         cwd=self.root, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return self.uri
            except OSError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"mlflow server did not start:\n{tail}")
            time.sleep(0.25)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            try:
                pgid = os.getpgid(process.pid)
            except ProcessLookupError:
                pgid = None
            if pgid is not None and pgid == process.pid:  # its own group (start_new_session)
                _signal_group(pgid, signal.SIGTERM)
            else:
                process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                if pgid is not None and pgid == process.pid:
                    _signal_group(pgid, signal.SIGKILL)
                else:
                    process.kill()
                process.wait(timeout=15)
            if pgid is not None and pgid == process.pid:
                _signal_group(pgid, signal.SIGKILL)  # workers left behind by the parent, if any
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL the server's process group at once (by its own pid), as a crash would; then reap it."""
        process, self._process = self._process, None
        if process is not None:
            _signal_group(process.pid, signal.SIGKILL)  # its own group (start_new_session)
            process.wait(timeout=15)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------------------------------
# one server (and the training lake) per test session, shared by every module that asks
# --------------------------------------------------------------------------------------------------

_STASH = pytest.StashKey[dict]()


def session_value(request: pytest.FixtureRequest, name: str, factory: Callable[[], T]) -> T:
    """``factory()`` once per pytest session under ``name`` (for fixtures that several modules define)."""
    store = request.config.stash.get(_STASH, None)
    if store is None:
        store = {}
        request.config.stash[_STASH] = store
    if name not in store:
        store[name] = factory()
    return store[name]


def session_mlflow_server(request: pytest.FixtureRequest) -> MLflowServer:
    """The session's MLflow server (started on first use, stopped by its process group at session end)."""

    def start() -> MLflowServer:
        root = request.getfixturevalue("tmp_path_factory").mktemp("mlflow-server")
        server = MLflowServer(root)
        server.start()
        request.config.add_cleanup(server.stop)
        return server

    return session_value(request, "mlflow_server", start)


def session_train_lake(request: pytest.FixtureRequest):
    """The tiny demo sources (the session's ``demo_sources``) ingested into a lake of their own, once.

    Tests may add snapshots to it (they are additive); they must not re-ingest into it.
    """

    def build():
        from mermaid_data.ingest import ingest
        from mermaid_data.lake import Lake

        src = request.getfixturevalue("demo_sources").dest
        lake = Lake.open(str(request.getfixturevalue("tmp_path_factory").mktemp("train-lake") / "lake"))
        ingest(lake, mermaid_uri=str(src / "mermaid" / "mermaid_confirmed_annotations.parquet"),
               coralnet_uri=str(src / "coralnet"), api=str(src / "api"))
        return lake

    return session_value(request, "train_lake", build)


def write_sources_csv(lake, path: Path, limit: int | None = None) -> Path:
    """A CoralNet sources CSV (column ``id``) of the lake's sources, largest first."""
    frame = lake.sql("SELECT source_id, count(*) AS n FROM annotations WHERE site = 'coralnet' "
                     "GROUP BY ALL ORDER BY n DESC, source_id")
    ids = frame["source_id"].to_list()[: limit or None]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id\n" + "".join(f"{i}\n" for i in ids))
    return path
