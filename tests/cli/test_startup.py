"""A fast start: `--help` imports no heavy library, and `uv run` does not re-compile the venv each time.

The timings themselves are measured by bench/startup.py (docs/performance.md), not here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("polars", "duckdb", "deltalake", "pyarrow", "numpy", "pydantic_settings", "boto3")

PROBE = """
import json, sys
from typer.testing import CliRunner
from mermaid_data.cli import app
result = CliRunner().invoke(app, {args!r})
assert result.exit_code == 0, result.output
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize("args", [["--help"], ["sql", "--help"], ["snapshot", "create", "--help"], ["--version"]])
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    """Bug pinned: `mermaid-data --help` importing DuckDB, deltalake, polars and pyarrow (0.7 s of imports)."""
    probe = PROBE.format(args=args, heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_bytecode_is_compiled_at_install_not_on_every_run() -> None:
    """Bug pinned: `compile-bytecode = true` in [tool.uv] made every `uv run` print "Bytecode compiled
    14022 files" and spend 1.3-2.7 s; install-time compilation must stay (this machine sets
    PYTHONDONTWRITEBYTECODE, so nothing else writes .pyc files)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert not config["tool"]["uv"].get("compile-bytecode", False)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    sync = re.search(r"^sync:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert sync and "sync" in sync.group(1) and "--compile-bytecode" in sync.group(1), makefile
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:.*\bsync\b", makefile, re.MULTILINE), f"make {target} must run make sync"
