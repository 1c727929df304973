"""`mermaid-data sql` and `Lake.sql` are read-only, on a local lake and on an S3 (moto) lake."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from mermaid_data.cli import app
from mermaid_data.demo import DemoSummary
from mermaid_data.duck import _extension_path
from mermaid_data.errors import ReadOnlyError
from mermaid_data.lake import Lake
from mermaid_data.snapshot import SnapshotSpec
from typer.testing import CliRunner

from tests.support.s3 import S3Server


def local_state(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def s3_state(s3: S3Server, bucket: str) -> dict[str, str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def writes(lake: Lake) -> dict[str, str]:
    """One statement of every kind that writes, attaches, installs, loads or reconfigures."""
    annotations = lake.delta("annotations")
    data_file = annotations.file_uris()[0]
    log_file = f"{lake.table_uri('annotations')}/_delta_log/{annotations.version() + 1:020d}.json"
    root = str(lake.uri)
    return {
        "COPY over a lake data file": f"COPY (SELECT 1 AS x) TO '{data_file}' (FORMAT parquet)",
        "COPY into the Delta log": f"COPY (SELECT 1 AS x) TO '{log_file}' (FORMAT csv)",
        "COPY outside the lake": f"COPY (SELECT 1 AS x) TO '/tmp/mermaid-ro-{uuid.uuid4().hex}.csv'",
        "CREATE TABLE": "CREATE TABLE t AS SELECT 1 AS x",
        "CREATE TABLE in an attached file": f"ATTACH '{root}/evil.db' AS evil; CREATE TABLE evil.t AS SELECT 1",
        "CREATE VIEW over a view": "CREATE OR REPLACE VIEW annotations AS SELECT 1",
        "CREATE MACRO": "CREATE MACRO f(x) AS x",
        "CREATE SECRET": "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        "DROP VIEW": "DROP VIEW annotations_mapped",
        "ATTACH": f"ATTACH '{root}/attached.db'",
        "ATTACH in memory": "ATTACH ':memory:' AS m",
        "DETACH": "DETACH memory",
        "INSTALL": "INSTALL httpfs",
        "LOAD": "LOAD httpfs",
        "LOAD a file": f"LOAD '{_extension_path('httpfs')}'",
        "SET": "SET memory_limit = '1GB'",
        "SET external access": "SET enable_external_access = true",
        "RESET": "RESET memory_limit",
        "PRAGMA setting": "PRAGMA threads = 1",
        "EXPORT": f"EXPORT DATABASE '{root}/exported'",
        "EXPLAIN ANALYZE of a COPY": f"EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{data_file}' (FORMAT parquet)",
        "a write after a read": f"SELECT 1; COPY (SELECT 1 AS x) TO '{data_file}' (FORMAT parquet)",
        "CHECKPOINT": "CHECKPOINT",
        "USE": "USE memory",
        "PREPARE": "PREPARE p AS SELECT 1",
        "BEGIN": "BEGIN TRANSACTION",
        "VACUUM": "VACUUM",
        "a variable": "SET VARIABLE x = 1",
    }


def check_read_only(lake: Lake, snapshot_id: str, state: Callable[[], dict]) -> None:
    before, rows = state(), lake.sql("SELECT count(*) FROM annotations").item()
    for kind, statement in writes(lake).items():
        with pytest.raises(ReadOnlyError) as info:
            lake.sql(statement)
        assert "Fix:" in str(info.value), (kind, str(info.value))
    assert state() == before, "a refused statement changed the lake"
    # reads outside the lake are refused too (the connection is locked down behind the statement check)
    for outside in ("SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM glob('/*')",
                    "SELECT * FROM read_parquet('s3://another-bucket/x.parquet')"):
        with pytest.raises(ReadOnlyError, match="lake's own files"):
            lake.sql(outside)
    # legitimate queries keep working
    assert lake.sql("SELECT count(*) FROM annotations").item() == rows
    assert "annotations_mapped" in lake.sql("SHOW TABLES")["name"].to_list()
    assert lake.sql("DESCRIBE annotations").height > 5
    assert lake.sql("SUMMARIZE SELECT \"row\" FROM annotations").height == 1
    assert lake.sql("EXPLAIN SELECT count(*) FROM annotations_mapped").height >= 1
    assert lake.sql("WITH t AS (SELECT site FROM annotations) SELECT count(*) FROM t").item() == rows
    assert lake.sql("SELECT count(*) FROM annotations WHERE site = $site", {"site": "mermaid"}).item() > 0
    assert lake.sql(f"SELECT count(*) FROM snapshot('{snapshot_id}')").item() > 0
    assert lake.sql("SELECT count(*) FROM snapshots").item() == 1
    assert lake.sql("SELECT count(*) FROM annotations", as_of=0).item() == rows
    assert state() == before


@pytest.fixture(scope="module")
def local_lake(tmp_path_factory: pytest.TempPathFactory, demo_sources: DemoSummary, ingest_demo) -> tuple[Lake, str]:
    lake_dir = tmp_path_factory.mktemp("readonly") / "lake"
    ingest_demo(lake_dir, demo_sources.dest)
    lake = Lake.open(str(lake_dir))
    return lake, lake.create_snapshot(SnapshotSpec(missing_features_allowed=100)).snapshot_id


def test_sql_cannot_write_attach_install_or_reconfigure_a_local_lake(local_lake) -> None:
    """Bug pinned: `mermaid-data sql "COPY … TO '<lake>/tables/annotations/…/part-….parquet'"` overwrote lake
    data (counts then silently wrong), COPY into the Delta log broke every command, ATTACH created files."""
    lake, sid = local_lake
    root = Path(lake.uri.key)
    check_read_only(lake, sid, lambda: local_state(root))
    assert not (root / "evil.db").exists() and not (root / "attached.db").exists()


def test_sql_cannot_write_an_s3_lake(s3: S3Server, s3_bucket, demo_sources: DemoSummary, ingest_demo) -> None:
    bucket = s3_bucket("readonly")
    uri = f"s3://{bucket}/lake"
    ingest_demo(uri, demo_sources.dest)
    lake = Lake.open(uri)
    sid = lake.create_snapshot(SnapshotSpec(missing_features_allowed=100)).snapshot_id
    check_read_only(lake, sid, lambda: s3_state(s3, bucket))


def test_the_sql_command_refuses_writes_in_one_line(local_lake) -> None:
    lake, _sid = local_lake
    data_file = lake.delta("annotations").file_uris()[0]
    result = CliRunner().invoke(app, ["sql", f"COPY (SELECT 1 AS x) TO '{data_file}' (FORMAT parquet)",
                                      "--lake", str(lake.uri)], env={"COLUMNS": "250"})
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "statement 1 is COPY" in errors[0] and "read-only" in errors[0], result.stderr
    assert "Traceback" not in result.output
    ok = CliRunner().invoke(app, ["sql", "SELECT count(*) AS n FROM annotations", "--lake", str(lake.uri),
                                  "--format", "csv", "--as-of", "0"])
    assert ok.exit_code == 0 and ok.stdout.splitlines()[0] == "n"


@pytest.mark.parametrize(("statement", "named"), [("INSTALL httpfs", "INSTALL"), ("force install httpfs", "FORCE INSTALL"),
                                                  ("LOAD httpfs", "LOAD")])
def test_the_refusal_names_the_statement_as_written(local_lake, statement: str, named: str) -> None:
    """Bug pinned: `sql "INSTALL httpfs"` was refused as "statement 1 is LOAD" (DuckDB parses INSTALL as a
    LOAD statement), which reads as if the user had written something else."""
    lake, _sid = local_lake
    with pytest.raises(ReadOnlyError) as info:
        lake.sql(statement)
    assert f"statement 1 is {named}:" in str(info.value)
