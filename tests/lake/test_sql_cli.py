"""`mermaid-data sql` / `history` and `Lake.sql`: output formats, --as-of, history, user errors."""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from mermaid_data.cli import app
from mermaid_data.demo import DemoSummary
from mermaid_data.errors import LakeError
from mermaid_data.lake import Lake
from typer.testing import CliRunner

from tests.support.cli import one_line_error

WIDE = {"COLUMNS": "250"}


@dataclass(frozen=True)
class History:
    """A lake ingested twice: one CoralNet source grew by ``added`` rows in between."""

    lake_dir: Path
    old_version: int  # annotations version after the first ingest
    new_version: int
    old_lake: int  # lake version of the first ingest (what --as-of takes)
    new_lake: int
    old_total: int
    new_total: int
    changed_source: str
    added: int


@pytest.fixture(scope="module")
def history_lake(tmp_path_factory: pytest.TempPathFactory, demo_sources: DemoSummary, ingest_demo) -> History:
    root = tmp_path_factory.mktemp("sqlcli")
    src = root / "src"
    shutil.copytree(demo_sources.dest, src)
    lake_dir = root / "lake"
    ingest_demo(lake_dir, src)
    lake = Lake.open(str(lake_dir))
    old_version = lake.versions()["annotations"]
    old_lake = lake.lake_version().number
    source = min((p for p in (src / "coralnet").iterdir()), key=lambda p: int(p.name[1:]))
    path = source / "annotations.csv"
    lines = path.read_text().rstrip("\n").splitlines()
    header, body = lines[0], lines[1:]
    extra = [body[-1], body[-2]]  # two more points (duplicates of existing ones: legal)
    path.write_text("\n".join([header, *body, *extra]) + "\n")
    ingest_demo(lake_dir, src)
    return History(
        lake_dir=lake_dir,
        old_version=old_version,
        new_version=lake.versions()["annotations"],
        old_lake=old_lake,
        new_lake=lake.lake_version().number,
        old_total=demo_sources.total_rows,
        new_total=demo_sources.total_rows + 2,
        changed_source=source.name[1:],
        added=2,
    )


def run(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDE)


# --------------------------------------------------------------------------------------------------
# formats
# --------------------------------------------------------------------------------------------------

COUNT_QUERY = "SELECT site, count(*) AS n FROM annotations GROUP BY site ORDER BY site"


def test_sql_table_format(history_lake: History, demo_sources: DemoSummary) -> None:
    """Bug pinned: the default table output missing columns or values."""
    result = run("sql", COUNT_QUERY, "--lake", str(history_lake.lake_dir))
    assert result.exit_code == 0, result.output
    assert "site" in result.stdout and "coralnet" in result.stdout and "mermaid" in result.stdout
    assert str(demo_sources.mermaid_rows) in result.stdout
    assert str(demo_sources.coralnet_rows + history_lake.added) in result.stdout


def test_sql_csv_to_stdout_and_file(history_lake: History, demo_sources: DemoSummary, tmp_path: Path) -> None:
    """Bug pinned: CSV output malformed, truncated to the table view's 200 rows, or not written to --output."""
    result = run("sql", COUNT_QUERY, "--lake", str(history_lake.lake_dir), "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows == [
        {"site": "coralnet", "n": str(demo_sources.coralnet_rows + history_lake.added)},
        {"site": "mermaid", "n": str(demo_sources.mermaid_rows)},
    ]
    out = tmp_path / "all.csv"
    result = run(
        "sql",
        "SELECT annotation_id FROM annotations ORDER BY annotation_id",
        "--lake",
        str(history_lake.lake_dir),
        "--format",
        "csv",
        "--output",
        str(out),
    )
    assert result.exit_code == 0, result.output
    frame = pl.read_csv(out)
    assert frame.height == history_lake.new_total > 200
    assert frame["annotation_id"].n_unique() == frame.height


def test_sql_json(history_lake: History, demo_sources: DemoSummary) -> None:
    """Bug pinned: JSON output not parseable or not one object per row."""
    result = run("sql", COUNT_QUERY, "--lake", str(history_lake.lake_dir), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data == [
        {"site": "coralnet", "n": demo_sources.coralnet_rows + history_lake.added},
        {"site": "mermaid", "n": demo_sources.mermaid_rows},
    ]


def test_sql_parquet_needs_output_and_writes_it(history_lake: History, tmp_path: Path) -> None:
    """Bug pinned: parquet written to a terminal, or the parquet file not matching the query."""
    one_line_error(run("sql", COUNT_QUERY, "--lake", str(history_lake.lake_dir), "--format", "parquet"))
    out = tmp_path / "result.parquet"
    result = run(
        "sql",
        "SELECT * FROM annotations_mapped",
        "--lake",
        str(history_lake.lake_dir),
        "--format",
        "parquet",
        "--output",
        str(out),
    )
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(out)
    expected = Lake.open(str(history_lake.lake_dir)).sql("SELECT count(*) FROM annotations_mapped").item()
    assert frame.height == expected
    assert {"annotation_id", "benthic_attribute_id", "growth_form_id", "feature_key"} <= set(frame.columns)


def test_unknown_format_is_a_user_error(history_lake: History) -> None:
    """Bug pinned: an unknown --format silently falling back or crashing with a traceback."""
    line = one_line_error(run("sql", COUNT_QUERY, "--lake", str(history_lake.lake_dir), "--format", "xml"))
    assert "xml" in line


# --------------------------------------------------------------------------------------------------
# --as-of and history
# --------------------------------------------------------------------------------------------------


def test_as_of_reads_the_older_version(history_lake: History) -> None:
    """Bug pinned: --as-of ignored (reading the latest version) or pinning the wrong table versions.

    ``--as-of N`` is lake version N: the state one completed ingest left (docs/lake.md)."""
    assert history_lake.new_lake > history_lake.old_lake
    query = "SELECT count(*) AS n FROM annotations"
    lake_arg = ("--lake", str(history_lake.lake_dir), "--format", "csv")
    old = run("sql", query, *lake_arg, "--as-of", str(history_lake.old_lake))
    assert old.exit_code == 0, old.output
    assert old.stdout.splitlines()[1] == str(history_lake.old_total)
    new = run("sql", query, *lake_arg, "--as-of", str(history_lake.new_lake))
    assert new.stdout.splitlines()[1] == str(history_lake.new_total)
    latest = run("sql", query, *lake_arg)
    assert latest.stdout.splitlines()[1] == str(history_lake.new_total)
    lake = Lake.open(str(history_lake.lake_dir))
    assert (
        lake.sql(
            "SELECT count(*) FROM annotations WHERE source_id = ?",
            [history_lake.changed_source],
            as_of=history_lake.old_lake,
        ).item()
        + history_lake.added
        == lake.sql(
            "SELECT count(*) FROM annotations WHERE source_id = ?", [history_lake.changed_source]
        ).item()
    )


def test_as_of_pins_the_tables_written_by_the_same_ingest(history_lake: History) -> None:
    """Bug pinned: --as-of an annotations version showing the lake *before* that ingest's features/sources.

    Ingest commits annotations first and features/sources after; pinning the other tables to the
    annotations commit's time drops the ones the same ingest wrote right after it.
    """
    lake = Lake.open(str(history_lake.lake_dir))
    pinned_rows = lake.sql(
        "SELECT row_count FROM sources WHERE source_id = ?",
        [history_lake.changed_source],
        as_of=history_lake.old_lake,
    )
    assert pinned_rows.height == 1, "the sources table of that ingest is missing at --as-of"
    pinned = pinned_rows.item()
    counted = lake.sql(
        "SELECT count(*) FROM annotations WHERE source_id = ?",
        [history_lake.changed_source],
        as_of=history_lake.old_lake,
    ).item()
    assert pinned == counted
    features_then = lake.sql("SELECT count(*) FROM features", as_of=history_lake.old_lake).item()
    assert features_then == lake.sql("SELECT count(*) FROM features").item() > 0


def test_as_of_a_missing_version_is_a_user_error(history_lake: History) -> None:
    """Bug pinned: --as-of of a version that does not exist returning latest data or a traceback."""
    line = one_line_error(run("sql", "SELECT 1", "--lake", str(history_lake.lake_dir), "--as-of", "999"))
    assert "999" in line and "history" in line


def test_history_lists_versions_with_operation_rows_and_sources(history_lake: History) -> None:
    """Bug pinned: history missing versions, operations, row counts or which source a commit touched."""
    frame = Lake.open(str(history_lake.lake_dir)).history()
    annotations = frame.filter(pl.col("table") == "annotations").sort("version")
    assert annotations["version"].to_list() == list(range(history_lake.new_version + 1))
    assert annotations["operation"].str.len_chars().min() > 0
    last = annotations.row(-1, named=True)
    assert last["sources"] == f"coralnet:{history_lake.changed_source}"
    assert last["rows_added"] - last["rows_removed"] == history_lake.added
    assert annotations.filter(pl.col("version") <= history_lake.old_version)["rows_added"].sum() == (
        history_lake.old_total
    )
    assert set(frame["table"]) >= {
        "annotations",
        "sources",
        "features",
        "benthic_attributes",
        "growth_forms",
        "label_mappings",
    }

    result = run("history", "--lake", str(history_lake.lake_dir))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for word in ("annotations", "label_mappings", "WRITE", f"coralnet:{history_lake.changed_source}"):
        assert word in out, word
    result = run("history", "--lake", str(history_lake.lake_dir), "--table", "annotations")
    assert result.exit_code == 0, result.output
    assert "label_mappings" not in result.stdout


def test_lake_sql_returns_polars(history_lake: History) -> None:
    """Bug pinned: the Python API returning something other than a polars DataFrame, or ignoring params."""
    lake = Lake.open(str(history_lake.lake_dir))
    frame = lake.sql("SELECT site, count(*) AS n FROM annotations_mapped GROUP BY site ORDER BY site")
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == ["site", "n"] and frame.height == 2
    one = lake.sql(
        "SELECT count(*) AS n FROM annotations WHERE source_id = $sid", {"sid": history_lake.changed_source}
    )
    assert isinstance(one, pl.DataFrame) and one.item() > 0
    assert (
        lake.sql("SELECT count(*) FROM annotations", as_of=history_lake.old_lake).item()
        == history_lake.old_total
    )
    # the MERMAID_LAKE_URI setting is the default lake
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MERMAID_LAKE_URI", str(history_lake.lake_dir))
        assert Lake.open().sql("SELECT count(*) FROM annotations").item() == history_lake.new_total


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------


def test_bad_sql_is_one_line_exit_2(history_lake: History) -> None:
    """Bug pinned: a SQL typo printing a stack trace or a multi-line DuckDB dump."""
    line = one_line_error(run("sql", "SELEC * FROM annotations", "--lake", str(history_lake.lake_dir)))
    assert "syntax" in line.lower()
    line = one_line_error(run("sql", "SELECT nope FROM annotations", "--lake", str(history_lake.lake_dir)))
    assert "nope" in line
    with pytest.raises(LakeError):
        Lake.open(str(history_lake.lake_dir)).sql("SELECT * FROM no_such_table")


def test_sql_on_a_missing_lake_says_to_ingest(tmp_path: Path) -> None:
    """Bug pinned: querying a lake that does not exist crashing instead of saying to run ingest."""
    line = one_line_error(run("sql", "SELECT 1", "--lake", str(tmp_path / "nowhere")))
    assert "mermaid-data ingest" in line
    line = one_line_error(run("history", "--lake", str(tmp_path / "nowhere")))
    assert "mermaid-data ingest" in line
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(LakeError, match="mermaid-data ingest"):
        Lake.open(str(tmp_path / "nowhere")).sql("SELECT 1")
