"""Real `mermaid-data` processes for the concurrency and crash tests: start, watch, stop, kill (by pid)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

CLI = [sys.executable, "-m", "mermaid_data.cli"]


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``mermaid-data ARGS`` in a new process (stdout/stderr captured as text)."""
    return subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "250", **(env or {})})


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "COLUMNS": "250"})


def wait_until(condition: Callable[[], bool], process: subprocess.Popen | None = None, timeout: float = 120) -> bool:
    """Poll ``condition`` (tightly) until it holds; False if ``process`` ended first or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process is not None and process.poll() is not None:
            return condition()
        time.sleep(0.0005)
    return False


def kill9(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)


def stop(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGSTOP)


def resume(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGCONT)


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]
