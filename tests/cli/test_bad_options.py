"""Bad options get one line naming the value and the fix, before any work, and nothing is written.

Also: a missing lake names the lakes below the current folder and how to select one.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from mermaid_data.cli import app
from mermaid_data.ingest import ingest
from mermaid_data.lake import LAKE_SEARCH_DEPTH, Lake, find_lakes
from typer.testing import CliRunner

from tests.support.cli import assert_names_fix, one_line_error

GOOD_CSV = "Image ID,Row,Column,Label ID\n1,10,20,82\n1,11,21,82\n2,12,22,83\n"


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-row CoralNet-only lake (copy it before changing it)."""
    root = tmp_path_factory.mktemp("small")
    (root / "coralnet" / "s1").mkdir(parents=True)
    (root / "coralnet" / "s1" / "annotations.csv").write_text(GOOD_CSV)
    ingest(Lake.open(str(root / "lake")), mermaid_uri=None, coralnet_uri=str(root / "coralnet"), api=None)
    return root / "lake"


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250", "MERMAID_LAKE_URI": ""})


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("value", ["notadate", "-1", "2026-13-01", "v3"])
def test_as_of_that_is_neither_a_version_nor_a_time(small_lake: Path, value: str) -> None:
    """Bug pinned: `sql --as-of notadate` ended in `ValueError: Invalid isoformat string` (a traceback)."""
    line = one_line_error(run("sql", "SELECT 1", "--lake", str(small_lake), "--as-of", value))
    assert repr(value) in line and "--as-of" in line and "history" in line
    assert_names_fix(line)


def test_as_of_accepts_versions_and_times(small_lake: Path) -> None:
    for value in ("0", "2100-01-01", "2100-01-01T00:00:00+00:00"):
        result = run("sql", "SELECT count(*) AS n FROM annotations", "--lake", str(small_lake), "--as-of", value,
                     "--format", "csv")
        assert result.exit_code == 0, (value, result.output)
        assert result.stdout.splitlines() == ["n", "3"]


def test_output_in_a_missing_folder(small_lake: Path, tmp_path: Path) -> None:
    """Bug pinned: `sql --output /missing/dir/x.csv` ran the query, then a FileNotFoundError traceback."""
    out = tmp_path / "missing" / "dir" / "x.csv"
    line = one_line_error(run("sql", "SELECT 1", "--lake", str(small_lake), "--output", str(out)))
    assert str(out) in line and "does not exist" in line and "mkdir -p" in line
    assert not (tmp_path / "missing").exists()


def test_output_that_is_a_folder_or_under_a_file(small_lake: Path, tmp_path: Path) -> None:
    line = one_line_error(run("sql", "SELECT 1", "--lake", str(small_lake), "--output", str(tmp_path)))
    assert str(tmp_path) in line and "is a folder" in line
    (tmp_path / "file").write_text("x")
    line = one_line_error(run("sql", "SELECT 1", "--lake", str(small_lake), "--output", str(tmp_path / "file" / "x.csv")))
    assert "is a file, not a folder" in line
    assert (tmp_path / "file").read_text() == "x"


def test_output_to_a_full_device(small_lake: Path) -> None:
    """Bug pinned: a full disk under --output ended in `OSError: [Errno 28]` (a traceback).

    Uses /dev/full (every write fails with ENOSPC); the tmpfs tests in test_disk.py cover a real disk.
    """
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (a Linux device whose writes fail with ENOSPC)")
    line = one_line_error(run("sql", "SELECT 1", "--lake", str(small_lake), "--format", "csv", "--output", "/dev/full"))
    assert line.startswith("error: /dev/full: disk full") and "Fix: free space" in line


@pytest.mark.parametrize(
    "args",
    [
        ["sql", "SELECT 1"],
        ["history"],
        ["snapshot", "list"],
        ["snapshot", "create"],
        ["vacuum"],
        ["ingest", "--mermaid", "none", "--api", "none", "--coralnet", "CORALNET"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_lake_that_is_a_file(small_lake: Path, tmp_path: Path, args: list[str]) -> None:
    """Bug pinned: `--lake FILE` said "no lake here" for reads and, for ingest, read every source and then
    died in `NotADirectoryError` (a traceback)."""
    lake_file = tmp_path / "lake.txt"
    lake_file.write_text("not a lake")
    coralnet = tmp_path / "coralnet" / "s1"
    coralnet.mkdir(parents=True)
    (coralnet / "annotations.csv").write_text(GOOD_CSV)
    args = [str(tmp_path / "coralnet") if a == "CORALNET" else a for a in args]
    started = time.monotonic()
    line = one_line_error(run(*args, "--lake", str(lake_file)))
    assert f"{lake_file}: is a file, not a lake folder" in line
    assert_names_fix(line)
    assert lake_file.read_text() == "not a lake"
    assert time.monotonic() - started < 20


def test_lake_inside_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "coralnet" / "s1").mkdir(parents=True)
    (tmp_path / "coralnet" / "s1" / "annotations.csv").write_text(GOOD_CSV)
    line = one_line_error(run("ingest", "--lake", str(tmp_path / "file" / "lake"), "--mermaid", "none", "--api",
                              "none", "--coralnet", str(tmp_path / "coralnet")))
    assert "is a file" in line and str(tmp_path / "file") in line


# ---- a missing lake names the lakes it can see --------------------------------------------------


@pytest.fixture
def workspace(small_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A current folder with the small lake at demo-work/lake (like `make demo` leaves it)."""
    shutil.copytree(small_lake, tmp_path / "demo-work" / "lake")
    (tmp_path / "notes" / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MERMAID_LAKE_URI", raising=False)
    return tmp_path


def test_missing_lake_names_the_lakes_below(workspace: Path) -> None:
    """Bug pinned: after `make demo`, `mermaid-data sql "SELECT count(*) FROM annotations"` from the repository
    root said only "no lake here" although demo-work/lake was right there."""
    result = CliRunner().invoke(app, ["sql", "SELECT count(*) FROM annotations"], env={"MERMAID_LAKE_URI": None})
    line = one_line_error(result)
    assert f"{workspace / 'lake'}: no lake here" in line
    assert "found 1 lake(s) below this folder: demo-work/lake" in line
    assert "--lake demo-work/lake" in line and "MERMAID_LAKE_URI=demo-work/lake" in line
    assert not (workspace / "lake").exists()
    ok = CliRunner().invoke(app, ["sql", "SELECT count(*) AS n FROM annotations", "--lake", "demo-work/lake",
                                  "--format", "csv"])
    assert ok.exit_code == 0 and ok.stdout.splitlines() == ["n", "3"], ok.output


def test_lake_search_is_bounded(workspace: Path) -> None:
    """Bug pinned (guard): a search that walks a whole home folder. Depth and folder count are bounded."""
    deep = workspace / "x" / "y" / "z"
    shutil.copytree(workspace / "demo-work" / "lake", deep / "lake")  # 4 levels down: not listed
    hidden = workspace / ".cache"
    shutil.copytree(workspace / "demo-work" / "lake", hidden / "lake")  # hidden folders are skipped
    assert LAKE_SEARCH_DEPTH == 3
    assert find_lakes(workspace) == [workspace / "demo-work" / "lake"]
    shutil.copytree(workspace / "demo-work" / "lake", workspace / "x" / "y" / "lake")
    assert find_lakes(workspace) == [workspace / "demo-work" / "lake", workspace / "x" / "y" / "lake"]
    for i in range(30):
        (workspace / "many" / f"d{i:02d}").mkdir(parents=True)
    assert find_lakes(workspace, budget=5) == []  # gave up after 5 folders: fast, not exhaustive
    lines = one_line_error(CliRunner().invoke(app, ["history"]))
    assert "found 2 lake(s)" in lines


def test_no_lake_anywhere_says_to_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    line = one_line_error(CliRunner().invoke(app, ["snapshot", "list", "--lake", "nowhere"]))
    assert "no lake here" in line and "mermaid-data ingest" in line and "found" not in line
    assert tree(tmp_path) == []
