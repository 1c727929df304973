"""`kill -9` of an ingest subprocess mid-way: every table stays readable, no source is half in, a rerun finishes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from mermaid_data.demo import DemoSummary, generate_demo_sources
from mermaid_data.ingest import ingest
from mermaid_data.lake import Lake
from mermaid_data.tables import TABLES

from tests.support.processes import error_lines, kill9, run_cli, wait_until

MERMAID_PARQUET = "mermaid/mermaid_confirmed_annotations.parquet"


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoSummary, dict[tuple[str, str], int]]:
    """300k annotations without features, and each source's row count read from the files themselves."""
    summary = generate_demo_sources(
        tmp_path_factory.mktemp("crash") / "src", annotations=300_000, features=False, seed=3
    )
    expected = {("mermaid", "mermaid"): pq.read_metadata(summary.dest / MERMAID_PARQUET).num_rows}
    for source in (summary.dest / "coralnet").iterdir():
        count = pl.scan_csv(source / "annotations.csv", infer_schema=False).select(pl.len()).collect().item()
        expected[("coralnet", str(int(source.name[1:])))] = count
    assert sum(expected.values()) == summary.total_rows
    return summary, expected


def committed_versions(lake_dir: Path) -> int:
    """How many Delta commit files exist under the lake (cheap: no table is opened)."""
    return (
        sum(1 for _ in (lake_dir / "tables").glob("*/_delta_log/*.json"))
        if (lake_dir / "tables").exists()
        else 0
    )


def start_ingest(lake_dir: Path, src: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mermaid_data.cli",
            "ingest",
            "--lake",
            str(lake_dir),
            "--mermaid",
            str(src / MERMAID_PARQUET),
            "--coralnet",
            str(src / "coralnet"),
            "--api",
            str(src / "api"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "MERMAID_DUCKDB_MEMORY_LIMIT": "1GB"},
    )


def kill_when(
    process: subprocess.Popen[bytes], lake_dir: Path, min_commits: int, extra_delay_s: float
) -> str:
    """SIGKILL once ``min_commits`` commit files exist (then wait ``extra_delay_s``); say when it landed."""
    deadline = time.monotonic() + 60
    while (
        committed_versions(lake_dir) < min_commits and process.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    if extra_delay_s:
        time.sleep(extra_delay_s)
    commits = committed_versions(lake_dir)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        return f"killed after {commits} commits"
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert process.returncode == 0, stderr
    return "finished before the kill"


def assert_consistent(lake_dir: Path, expected: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """Every table that exists opens at its latest version; every source is absent or complete."""
    lake = Lake.open(str(lake_dir))
    tables_dir = lake_dir / "tables"
    if tables_dir.exists():
        for table_dir in tables_dir.iterdir():
            if (table_dir / "_delta_log").is_dir() and any((table_dir / "_delta_log").glob("*.json")):
                table = DeltaTable(str(table_dir))
                table.to_pyarrow_dataset().count_rows()  # every referenced file is there and readable
                assert table_dir.name in TABLES
    if not lake.exists():
        return {}
    per_source = {
        (site, source): n
        for site, source, n in lake.sql(
            "SELECT site, source_id, count(*) FROM annotations GROUP BY ALL"
        ).rows()
    }
    partial = {k: (n, expected.get(k)) for k, n in per_source.items() if n != expected.get(k)}
    assert not partial, f"partial or unknown sources after the kill: {partial}"
    ids = lake.sql("SELECT count(*) - count(DISTINCT annotation_id) FROM annotations").item()
    assert ids == 0
    # the sources table never claims a source the annotations do not hold in full
    if lake.delta("sources") is not None:
        claimed = lake.sql("SELECT site, source_id, row_count FROM sources WHERE site <> 'api'").rows()
        for site, source, rows in claimed:
            assert per_source.get((site, source)) == rows == expected[(site, source)], (site, source)
    return per_source


# Commits happen in this order: benthic_attributes, growth_forms, label_mappings, annotations (MERMAID),
# annotations (CoralNet), features (MERMAID), features (CoralNet), sources. Kill right after the 1st
# (taxonomy half written), the 4th (the CoralNet annotations being written) and the 7th (before sources).
KILL_POINTS = [(1, 0.0), (4, 0.0), (7, 0.0)]


def test_kill_9_mid_ingest_then_rerun_finishes(
    tmp_path: Path, medium: tuple[DemoSummary, dict[tuple[str, str], int]]
) -> None:
    """Bug pinned: a killed ingest leaving a half-written source, an unreadable table, or a rerun that cannot finish."""
    summary, expected = medium
    landed = []
    for attempt, (min_commits, delay) in enumerate(KILL_POINTS):
        lake_dir = tmp_path / f"lake{attempt}"
        process = start_ingest(lake_dir, summary.dest)
        try:
            landed.append(kill_when(process, lake_dir, min_commits, delay))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert_consistent(lake_dir, expected)

        # the rerun completes the job: every source in full, exactly once
        report = ingest(
            Lake.open(str(lake_dir)),
            mermaid_uri=str(summary.dest / MERMAID_PARQUET),
            coralnet_uri=str(summary.dest / "coralnet"),
            api=str(summary.dest / "api"),
        )
        per_source = assert_consistent(lake_dir, expected)
        assert per_source == expected
        assert report.summary["annotations"] == summary.total_rows
        if attempt:
            continue
        # and a second rerun has nothing left to do
        lake = Lake.open(str(lake_dir))
        before = lake.versions()
        again = ingest(
            lake,
            mermaid_uri=str(summary.dest / MERMAID_PARQUET),
            coralnet_uri=str(summary.dest / "coralnet"),
            api=str(summary.dest / "api"),
        )
        assert again.versions_written == {} and lake.versions() == before
    assert any(text.startswith("killed") for text in landed), landed


# --------------------------------------------------------------------------------------------------
# leftovers of a killed ingest, and two ingests at once
# --------------------------------------------------------------------------------------------------


def data_files(lake_dir: Path) -> set[str]:
    return {str(p) for p in (lake_dir / "tables").rglob("*.parquet") if "_delta_log" not in p.parts}


def ever_referenced(lake_dir: Path) -> set[str]:
    """Every data file some version of some table references."""
    out: set[str] = set()
    for log in (lake_dir / "tables").glob("*/_delta_log"):
        latest = DeltaTable(str(log.parent)).version()
        for version in range(latest + 1):
            out.update(DeltaTable(str(log.parent), version=version).file_uris())
    return out


@pytest.fixture(scope="module")
def changed_medium(
    tmp_path_factory: pytest.TempPathFactory, medium: tuple[DemoSummary, dict[tuple[str, str], int]]
) -> tuple[Path, Path, dict[tuple[str, str], int]]:
    """The medium sources ingested into a lake, then changed everywhere (a second ingest rewrites everything)."""
    summary, expected = medium
    root = tmp_path_factory.mktemp("crash-changed")
    src = root / "src"
    shutil.copytree(summary.dest, src)
    lake_dir = root / "lake"
    ingest(Lake.open(str(lake_dir)), mermaid_uri=str(src / MERMAID_PARQUET), coralnet_uri=str(src / "coralnet"),
           api=str(src / "api"))
    table = pq.read_table(src / MERMAID_PARQUET)
    pq.write_table(table.slice(1), src / MERMAID_PARQUET)
    changed = dict(expected)
    changed[("mermaid", "mermaid")] -= 1
    for source in (src / "coralnet").iterdir():
        csv = source / "annotations.csv"
        lines = csv.read_text().splitlines()
        csv.write_text("\n".join(lines[:-1]) + "\n")
        changed[("coralnet", str(int(source.name[1:])))] -= 1
    return lake_dir, src, changed


def test_a_killed_ingests_files_are_reclaimed_by_the_next_ingest_or_vacuum(
    tmp_path: Path, changed_medium: tuple[Path, Path, dict[tuple[str, str], int]]
) -> None:
    """Bug pinned: a killed ingest left unreferenced Parquet files that `vacuum` never removed (155 files in
    one run). The next ingest deletes what the dead one wrote (its files carry its lock's token) and rolls
    back its commits; `vacuum` deletes every file no version needs."""
    base, src, expected = changed_medium
    for reclaim in ("ingest", "vacuum"):
        lake_dir = tmp_path / reclaim
        shutil.copytree(base, lake_dir)
        before = data_files(lake_dir)
        for _attempt in range(5):
            process = start_ingest(lake_dir, src)
            wait_until(lambda d=lake_dir, b=before: any("source_id=" in f and f not in b for f in data_files(d)),
                       process)
            kill9(process)
            orphans = data_files(lake_dir) - ever_referenced(lake_dir)
            if orphans:
                break
            shutil.rmtree(lake_dir)
            shutil.copytree(base, lake_dir)
        assert orphans, "the kill never landed while files were being written"
        if reclaim == "ingest":
            report = ingest(Lake.open(str(lake_dir)), mermaid_uri=str(src / MERMAID_PARQUET),
                            coralnet_uri=str(src / "coralnet"), api=str(src / "api"))
            assert any("uncommitted file(s) of the ingest that died" in w for w in report.warnings), report.warnings
            assert not data_files(lake_dir) - ever_referenced(lake_dir), "the next ingest left orphans"
            assert assert_consistent(lake_dir, expected) == expected
        else:
            dry = run_cli("vacuum", "--lake", str(lake_dir), "--dry-run")
            assert dry.returncode == 0, dry.stderr
            assert not orphans - data_files(lake_dir)
            done = run_cli("vacuum", "--lake", str(lake_dir))
            assert done.returncode == 0, done.stderr
            assert not data_files(lake_dir) & orphans, "vacuum left the dead ingest's files"
            assert_consistent(lake_dir, {**expected, **{k: v + 1 for k, v in expected.items()}})


def test_two_ingests_at_once_serialize_or_fail_in_one_line(
    tmp_path: Path, changed_medium: tuple[Path, Path, dict[tuple[str, str], int]]
) -> None:
    """Bug pinned: two ingests at once ended in a raw DeltaError / CommitFailedError. Now one writes; the other
    either finds the work done (it ran after) or fails at once with one line saying another writer is active."""
    base, src, expected = changed_medium
    lake_dir = tmp_path / "lake"
    shutil.copytree(base, lake_dir)
    processes = [start_ingest(lake_dir, src) for _ in range(3)]
    outcomes = []
    for process in processes:
        process.wait(timeout=300)
        stderr = process.stderr.read().decode() if process.stderr else ""
        outcomes.append((process.returncode, stderr))
    assert sum(code == 0 for code, _ in outcomes) >= 1, outcomes
    for code, stderr in outcomes:
        assert "Traceback" not in stderr and "DeltaError" not in stderr and "CommitFailed" not in stderr, stderr
        if code != 0:
            errors = error_lines(stderr)
            assert code == 2 and len(errors) == 1 and "another writer is active" in errors[0], stderr
            assert "changed nothing" in errors[0]
    assert any(code == 2 for code, _ in outcomes), "the ingests did not overlap: make the sources bigger"
    assert assert_consistent(lake_dir, expected) == expected
