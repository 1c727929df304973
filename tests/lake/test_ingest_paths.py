"""The ingest's fast paths store exactly what the plain, strict paths would.

CoralNet CSVs are read by Arrow unless a file needs DuckDB's strict reader; duplicate points are found
by sorting 64-bit point hashes and only the candidates are numbered by the SQL window; annotations are
written as Parquet files encoded in parallel and committed in one Delta transaction. Each test pins
one of these against its slow, obviously-correct counterpart.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq
import pytest
from mermaid_data import ingest as ingest_mod
from mermaid_data.demo import DemoSummary
from mermaid_data.ingest import ingest
from mermaid_data.lake import Lake
from mermaid_data.sources import coralnet

ROWS = 'SELECT * EXCLUDE (ingested_at) FROM annotations_stored ORDER BY site, source_id, image_id, "row", col, occurrence, label_id, annotation_id'
SOURCES = "SELECT site, source_id, row_count, image_count, duplicate_points FROM sources ORDER BY ALL"


def _lake_rows(lake_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    lake = Lake.open(str(lake_dir))
    return lake.sql(ROWS), lake.sql(SOURCES)


def _ingest_demo(demo: DemoSummary, lake_dir: Path) -> None:
    root = Path(demo.dest)
    ingest(
        Lake.open(str(lake_dir)),
        mermaid_uri=str(root / "mermaid" / "mermaid_confirmed_annotations.parquet"),
        coralnet_uri=str(root / "coralnet"),
        api=str(root / "api"),
    )


@pytest.fixture(scope="module")
def reference(demo_sources: DemoSummary, tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    lake_dir = tmp_path_factory.mktemp("reference") / "lake"
    _ingest_demo(demo_sources, lake_dir)
    rows, sources = _lake_rows(lake_dir)
    assert sources["duplicate_points"].sum() > 0  # the demo has duplicate points, or these tests prove little
    return rows, sources


def test_strict_csv_reader_stores_what_the_fast_reader_stores(
    demo_sources: DemoSummary, reference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug pinned: Arrow's CSV fast path reading a value, column or duplicate differently from DuckDB's strict reader."""
    monkeypatch.setattr(coralnet, "_read_fast", lambda source: None)  # every file takes the strict path
    _ingest_demo(demo_sources, tmp_path / "lake")
    rows, sources = _lake_rows(tmp_path / "lake")
    assert rows.equals(reference[0])
    assert sources.equals(reference[1])


def test_hash_collisions_do_not_change_occurrence_numbers(
    demo_sources: DemoSummary, reference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug pinned: points that merely share a hash numbered as duplicates (the window must see the real point)."""
    monkeypatch.setattr(ingest_mod, "_point_hash", lambda s, i, r, c: np.zeros(len(s), dtype=np.uint64))
    _ingest_demo(demo_sources, tmp_path / "lake")
    rows, sources = _lake_rows(tmp_path / "lake")
    assert rows.equals(reference[0])
    assert sources.equals(reference[1])


def test_spaces_and_leading_zeros_read_as_the_number(tmp_path: Path) -> None:
    """Bug pinned: ' 082' read as a different value than 82 (or rejected) by one of the two CSV readers."""
    root = tmp_path / "coralnet"
    for sid, body in (("1", "7,10,20,82\n"), ("2", " 7 ,010, 20,082\n"), ("3", "7,10,20,82\n7,\t10,20,0082\n")):
        (root / f"s{sid}").mkdir(parents=True)
        (root / f"s{sid}" / "annotations.csv").write_text("Image ID,Row,Column,Label ID\n" + body)
    ingest(Lake.open(str(tmp_path / "lake")), mermaid_uri=None, coralnet_uri=str(root), api=None)
    got = Lake.open(str(tmp_path / "lake")).sql(
        'SELECT source_id, image_id, "row", col, label_id, occurrence FROM annotations ORDER BY ALL'
    ).rows()
    assert got == [
        ("1", "7", 10, 20, "82", 1),
        ("2", "7", 10, 20, "82", 1),
        ("3", "7", 10, 20, "82", 1),
        ("3", "7", 10, 20, "82", 2),
    ]


def test_mermaid_duplicate_points_numbered_by_annotation_id(tmp_path: Path) -> None:
    """Bug pinned: MERMAID duplicate points (same image, row, col) numbered in file order, or not at all."""
    ids = sorted(str(uuid.UUID(int=i + 1)) for i in range(4))
    ba = "f0f0f0f0-0000-4000-8000-000000000001"
    table = pa.table(
        {
            "id": [ids[2].upper(), ids[0], ids[1], ids[3]],  # upper case: stored lower-case, ordered as such
            "image_id": ["img-1", "img-1", "img-1", "img-2"],
            "row": pa.array([5, 5, 6, 5], pa.int64()),
            "col": pa.array([9, 9, 9, 9], pa.int64()),
            "benthic_attribute_id": [ba] * 4,
            "growth_form_id": ["None"] * 4,
            "updated_on": pa.array([None] * 4, pa.timestamp("us", "UTC")),
        }
    )
    path = tmp_path / "mermaid" / "export.parquet"
    path.parent.mkdir()
    pq.write_table(table, path)
    ingest(Lake.open(str(tmp_path / "lake")), mermaid_uri=str(path), coralnet_uri=None, api=None)
    lake = Lake.open(str(tmp_path / "lake"))
    got = lake.sql('SELECT annotation_id, image_id, "row", occurrence FROM annotations ORDER BY ALL').rows()
    assert got == [
        (ids[0], "img-1", 5, 1),
        (ids[1], "img-1", 6, 1),
        (ids[2], "img-1", 5, 2),
        (ids[3], "img-2", 5, 1),
    ]
    assert lake.sql("SELECT duplicate_points FROM sources WHERE site = 'mermaid'").item() == 1


def test_failed_write_leaves_no_rows_and_no_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug pinned: files of a write that failed half-way becoming visible (they must wait for the one commit)."""
    root = tmp_path / "coralnet"
    for sid in range(1, 6):
        (root / f"s{sid}").mkdir(parents=True)
        (root / f"s{sid}" / "annotations.csv").write_text(f"Image ID,Row,Column,Label ID\n{sid},1,2,3\n{sid},2,2,3\n")
    ingest(Lake.open(str(tmp_path / "lake")), mermaid_uri=None, coralnet_uri=str(root), api=None, coralnet_sources=["1"])
    before = Lake.open(str(tmp_path / "lake")).versions()
    real = ingest_mod._coralnet_table
    calls = []

    def failing(part, occurrence, ingested_at):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return real(part, occurrence, ingested_at)

    monkeypatch.setattr(ingest_mod, "_coralnet_table", failing)
    with pytest.raises(OSError, match="simulated"):
        ingest(Lake.open(str(tmp_path / "lake")), mermaid_uri=None, coralnet_uri=str(root), api=None)
    lake = Lake.open(str(tmp_path / "lake"))
    assert lake.versions() == before
    assert lake.sql("SELECT count(*) FROM annotations").item() == 2
    monkeypatch.setattr(ingest_mod, "_coralnet_table", real)
    ingest(lake, mermaid_uri=None, coralnet_uri=str(root), api=None)
    assert Lake.open(str(tmp_path / "lake")).sql("SELECT count(*) FROM annotations").item() == 10


def test_commit_records_row_counts_and_statistics(demo_sources: DemoSummary, tmp_path: Path) -> None:
    """Bug pinned: files committed without Delta statistics, so row counts and history read 0."""
    _ingest_demo(demo_sources, tmp_path / "lake")
    lake = Lake.open(str(tmp_path / "lake"))
    table = lake.delta("annotations")
    actions = pa.table(table.get_add_actions(flatten=True))
    assert pa.compute.sum(actions["num_records"]).as_py() == demo_sources.total_rows
    assert pa.compute.min(actions["min.row"]).as_py() >= 0  # integer bounds recorded (data skipping works)
    assert table.to_pyarrow_dataset().count_rows() == demo_sources.total_rows
    history = lake.history().filter(pl.col("table") == "annotations")
    assert history["rows_added"].sum() == demo_sources.total_rows
