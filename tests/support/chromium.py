"""Headless Chromium (Debian's `chromium` package) rendering a local HTML file or page, for report tests.

``render_dom(path)`` starts Chromium itself on the file (no server; ``render_url`` for a local server's
page), lets the page's scripts run with a virtual time budget, and returns the DOM as Chromium built it
(``--dump-dom``). The process is started by this helper and, if it does not finish in time, stopped by its
own process id. Tests that need it call ``require_chromium()``, which skips with the command that
installs it when it is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

INSTALL = "apt-get install -y chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    binary = chromium_binary()
    if binary is None:
        pytest.skip(f"headless Chromium is not installed; install it with `{INSTALL}` (.ci/run does)")
    return binary


def render_dom(path: Path, *, budget_ms: int = 5000, timeout_s: float = 60) -> str:
    """The DOM of ``path`` after Chromium loaded it and ran its scripts."""
    return render_url(Path(path).resolve().as_uri(), budget_ms=budget_ms, timeout_s=timeout_s)


def render_url(url: str, *, budget_ms: int = 5000, timeout_s: float = 60) -> str:
    """The DOM of ``url`` (a file, or a page of a local server such as MLflow's UI) after its scripts ran."""
    binary = require_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            out, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()  # our own child, by its pid
            process.communicate()
            raise
    if process.returncode != 0:
        raise RuntimeError(f"chromium exited with {process.returncode} rendering {url}")
    return out
