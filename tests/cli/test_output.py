"""What the commands print: formats chosen from --output, listings that are never cut, readable summaries."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
from mermaid_data.cli import app
from mermaid_data.demo import DemoSummary
from mermaid_data.lake import Lake
from mermaid_data.output import write_output
from mermaid_data.progress import RichProgress
from mermaid_data.snapshot import SnapshotSpec
from rich.console import Console
from typer.testing import CliRunner

from tests.support.cli import assert_names_fix, one_line_error

QUERY = "SELECT annotation_id, site FROM annotations ORDER BY annotation_id"
NARROW = {"COLUMNS": "40"}  # a narrow terminal setting: piped output must still not be cut


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, demo_sources: DemoSummary, ingest_demo) -> Lake:
    root = tmp_path_factory.mktemp("output")
    ingest_demo(root / "lake", demo_sources.dest)
    the_lake = Lake.open(str(root / "lake"))
    the_lake.create_snapshot(SnapshotSpec(name="a name long enough to need room", message="m"))
    the_lake.create_snapshot(SnapshotSpec(annotation_limit=100, name="limited"))
    return the_lake


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env or NARROW)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".json", ".txt", ".CSV"])
def test_sql_output_format_follows_the_file_name(lake: Lake, tmp_path: Path, suffix: str) -> None:
    """Bug pinned: `sql ... --output x.parquet` without --format wrote a text table into the .parquet file."""
    out = tmp_path / f"result{suffix}"
    result = run("sql", QUERY, "--lake", str(lake.uri), "--output", str(out))
    assert result.exit_code == 0, result.output
    expected = lake.sql(QUERY)
    kind = suffix.lower()
    if kind == ".parquet":
        assert pl.read_parquet(out).equals(expected)
    elif kind == ".csv":
        assert pl.read_csv(out).equals(expected)
    elif kind == ".json":
        assert [row["annotation_id"] for row in json.loads(out.read_text())] == expected["annotation_id"].to_list()
    else:
        text = out.read_text()
        assert "annotation_id" in text and expected["annotation_id"][0] in text
        assert "more rows" in text  # the table shows 200 rows and counts the rest
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


def test_explicit_format_wins_over_the_file_name(lake: Lake, tmp_path: Path) -> None:
    out = tmp_path / "result.txt"
    assert run("sql", QUERY, "--lake", str(lake.uri), "--output", str(out), "--format", "csv").exit_code == 0
    assert pl.read_csv(out).height == lake.sql(QUERY).height


def test_unknown_output_extension_is_refused(lake: Lake, tmp_path: Path) -> None:
    """Bug pinned: an unknown extension silently written as a text table."""
    out = tmp_path / "result.xlsx"
    line = one_line_error(run("sql", QUERY, "--lake", str(lake.uri), "--output", str(out)))
    assert str(out) in line and "--format" in line and ".parquet" in line
    assert_names_fix(line)
    assert not any(tmp_path.iterdir())


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    """Bug pinned: a write that failed half-way left a truncated result file."""
    out = tmp_path / "x.csv"

    def half(path) -> None:
        Path(path).write_text("a,b\n1,")
        raise OSError(28, "No space left on device")

    with pytest.raises(Exception, match="disk full") as info:
        write_output(out, half)
    assert str(out) in str(info.value)
    assert not any(tmp_path.iterdir())


def test_snapshot_list_piped_shows_whole_ids(lake: Lake) -> None:
    """Bug pinned: `snapshot list | ...` cut the snapshot IDs and digests people copy (80-column table)."""
    catalog = lake.sql("SELECT snapshot_id, content_sha256, name FROM snapshots")
    assert catalog.height == 2
    result = run("snapshot", "list", "--lake", str(lake.uri))
    assert result.exit_code == 0, result.output
    for sid, digest, name in catalog.iter_rows():
        assert sid in result.stdout and digest in result.stdout and name in result.stdout
    assert "…" not in result.stdout


@pytest.mark.parametrize("format", ["csv", "json"])
def test_snapshot_list_and_history_formats(lake: Lake, format: str) -> None:
    """Bug pinned: `snapshot list` and `history` had no --format for scripts."""
    listed = run("snapshot", "list", "--lake", str(lake.uri), "--format", format)
    assert listed.exit_code == 0, listed.output
    rows = list(csv.DictReader(io.StringIO(listed.stdout))) if format == "csv" else json.loads(listed.stdout)
    expected = lake.sql("SELECT * FROM snapshots")
    assert sorted(r["snapshot_id"] for r in rows) == sorted(expected["snapshot_id"])
    assert set(rows[0]) == set(expected.columns)  # every catalog column, not just the table's
    history = run("history", "--lake", str(lake.uri), "--format", format, "--table", "annotations")
    assert history.exit_code == 0, history.output
    rows = list(csv.DictReader(io.StringIO(history.stdout))) if format == "csv" else json.loads(history.stdout)
    versions = lake.history().filter(pl.col("table") == "annotations")["version"].to_list()
    assert [int(r["version"]) for r in rows] == versions
    assert all(r["table"] == "annotations" for r in rows)


def test_history_of_an_unknown_table_is_refused(lake: Lake) -> None:
    """Bug pinned: `history --table annotation` (a typo) printed an empty table and exit 0."""
    line = one_line_error(run("history", "--lake", str(lake.uri), "--table", "annotation"))
    assert "'annotation'" in line and "annotations" in line


def test_demo_sources_prints_a_summary_not_a_repr(tmp_path: Path) -> None:
    """Bug pinned: `demo-sources` printed `DemoSummary(dest=PosixPath(...), ...)`."""
    result = run("demo-sources", str(tmp_path / "d"), "--scale", "tiny", "--no-features")
    assert result.exit_code == 0, result.output
    assert "DemoSummary(" not in result.stdout and "PosixPath" not in result.stdout
    assert re.search(r"mermaid rows\s.*\s750\b", result.stdout), result.stdout
    assert str(tmp_path / "d") in result.stdout
    shutil.rmtree(tmp_path / "d")


def test_finished_progress_steps_never_show_0_of_unknown() -> None:
    """Bug pinned: on a terminal, a finished step without a known total showed `0/?`."""
    buffer = io.StringIO()
    progress = RichProgress(Console(file=buffer, force_terminal=True, width=100))
    with progress.task("fingerprint"):
        pass
    with progress.task("read rows") as task:
        task.advance(1234)
    with progress.task("write", total=3) as task:
        task.advance(1)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    assert "?" not in text, text
    final = {name: text.rsplit(name, 1)[1].splitlines()[0] for name in ("fingerprint", "read rows", "write")}
    assert re.fullmatch(r" ━+ +0:00:0\d", final["fingerprint"]), final  # a full bar, no count
    assert " 1,234 " in final["read rows"] and " 3/3 " in final["write"], final
