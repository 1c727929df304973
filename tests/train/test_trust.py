"""Training trains on what the snapshot ID names: its verified files, its pinned feature objects and roots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from mermaid_data.demo.features import read_feature_file, write_feature_file
from mermaid_data.lake import Lake
from mermaid_data.snapshot import SnapshotSpec
from mermaid_data.snapshot.lifecycle import vacuum, verify
from mermaid_train.cli import app
from mermaid_train.errors import TrainDataError
from mermaid_train.features import FeatureCache, Pin, feature_uris, pack
from mermaid_train.split import load_snapshot_rows, split_snapshot
from typer.testing import CliRunner

MERMAID_PARQUET = "mermaid/mermaid_confirmed_annotations.parquet"


def _one_line(out) -> str:
    assert out.exit_code == 2, out.output
    lines = [line for line in out.output.splitlines() if line.strip() and not line.startswith("[mermaid] ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out.output, out.output
    return lines[0]


def _packed(lake: Lake, snapshot_id: str, work: Path, cache: FeatureCache, allowed: float = 5.0):
    sid, manifest, rows = load_snapshot_rows(lake, snapshot_id)
    split = split_snapshot(rows, seed=0)
    return pack(split, snapshot_id=sid, split_key="images-seed0", cache=cache, lake=lake, work_dir=work,
                missing_allowed_pct=allowed, manifest=manifest)


def _vectors(packed, uri: str) -> np.ndarray:
    at = np.flatnonzero((packed.rows["feature_uri"] == uri).to_numpy())
    return np.asarray(packed.x[at])


def _expected(uri: str, packed) -> np.ndarray:
    rows, cols, feat = read_feature_file(uri)
    mine = packed.rows.filter(pl.col("feature_uri") == uri)
    index = {(int(r), int(c)): i for i, (r, c) in enumerate(zip(rows, cols))}
    return feat[[index[(r, c)] for r, c in mine.select("row", "col").iter_rows()]].astype(np.float32)


def _replace_features(path: Path, shift: float) -> None:
    """Write the file's vectors + ``shift`` under a new name and rename it over the old (a new object)."""
    rows, cols, feat = read_feature_file(path)
    fresh = path.with_name(path.name + ".new")
    write_feature_file(fresh, rows, cols, feat + shift)
    os.replace(fresh, path)


@pytest.fixture
def sources(demo_sources, tmp_path: Path) -> Path:
    """A private copy of the tiny demo sources (MERMAID is what these lakes ingest)."""
    dest = tmp_path / "src1"
    shutil.copytree(demo_sources.dest / "mermaid", dest / "mermaid")
    shutil.copytree(demo_sources.dest / "api", dest / "api")
    return dest


def _mermaid_lake(ingest_demo, root: Path, src: Path) -> Lake:
    ingest_demo(root, src, coralnet=None)
    return Lake.open(str(root))


# --------------------------------------------------------------------------------------------------
# 1. the snapshot's files are checked against its manifest
# --------------------------------------------------------------------------------------------------


def test_training_refuses_rows_changed_after_publication(train_lake, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug pinned: with a snapshot's rows.parquet rewritten (labels changed), `snapshot verify` reported the
    mismatch but `mermaid-train run` trained on it and recorded the manifest's digest."""
    lake_dir = tmp_path / "lake"
    shutil.copytree(train_lake.lake.uri.key, lake_dir)
    sid = train_lake.snapshot_id
    rows_path = lake_dir / "snapshots" / sid / "rows.parquet"
    published = rows_path.read_bytes()
    rows = pl.read_parquet(rows_path)
    top = rows["benthic_attribute_id"].value_counts(sort=True)["benthic_attribute_id"].to_list()[:2]
    swapped = rows.with_columns(pl.when(pl.col("benthic_attribute_id") == top[0]).then(pl.lit(top[1]))
                                .otherwise(pl.col("benthic_attribute_id")).alias("benthic_attribute_id"))
    swapped.write_parquet(rows_path)
    assert not verify(str(rows_path.parent))["ok"]  # the lake's own check sees it

    monkeypatch.setenv("MERMAID_TRAIN_CACHE_DIR", str(tmp_path / "cache"))
    out = CliRunner().invoke(app, ["run", "--snapshot", sid, "--lake", str(lake_dir), "--no-mlflow",
                                   "--runs-dir", str(tmp_path / "runs"), "--epochs", "1"])
    line = _one_line(out)
    assert f"{rows_path}:" in line and "does not match its manifest" in line and "SHA-256" in line
    assert f"mermaid-data snapshot verify {sid}" in line and "mermaid-data snapshot rebuild" in line
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()  # before any heavy work

    for report in ("ba_counts.csv", "label_mapping.csv"):  # the reports a run copies are checked too
        rows_path.write_bytes(published)
        report_path = rows_path.parent / report
        original = report_path.read_bytes()
        report_path.write_bytes(original + b"\n")
        with pytest.raises(TrainDataError, match=rf"{report} SHA-256 .* differs"):
            load_snapshot_rows(Lake.open(str(lake_dir)), sid)
        report_path.write_bytes(original)
    assert load_snapshot_rows(Lake.open(str(lake_dir)), sid)[2].equals(rows)  # restored: accepted


# --------------------------------------------------------------------------------------------------
# 2. feature objects are what the lake's features table pins
# --------------------------------------------------------------------------------------------------


def test_replaced_feature_object_is_fetched_again(sources: Path, ingest_demo, tmp_path: Path) -> None:
    """Bug pinned: the feature cache was keyed by URI only, so a feature file replaced at the source and
    re-ingested (the features table records its new size/ETag) trained on the old cached copy."""
    lake = _mermaid_lake(ingest_demo, tmp_path / "lake", sources)
    cache = FeatureCache(tmp_path / "cache")
    old_id = lake.create_snapshot(SnapshotSpec(name="before")).snapshot_id
    before = _packed(lake, old_id, tmp_path / "work", cache)
    uri = before.rows["feature_uri"][0]
    old_vectors = _vectors(before, uri)
    np.testing.assert_array_equal(old_vectors, _expected(uri, before))

    _replace_features(Path(uri), 1.0)
    ingest_demo(tmp_path / "lake", sources, coralnet=None)  # the features table now pins the new object
    new_id = lake.create_snapshot(SnapshotSpec(name="after")).snapshot_id
    assert new_id != old_id
    after = _packed(lake, new_id, tmp_path / "work", cache)
    np.testing.assert_array_equal(_vectors(after, uri), _expected(uri, after))
    np.testing.assert_allclose(_vectors(after, uri), old_vectors + 1.0, rtol=1e-6)
    assert after.info["fetch"]["fetched"] == 1  # only the replaced object is fetched

    # the old snapshot still reads the object it pinned, from the cache...
    again = _packed(lake, old_id, tmp_path / "work-again", cache)
    np.testing.assert_array_equal(_vectors(again, uri), old_vectors)
    # ...and without it, the object at the source is not what it pinned: reported, never packed
    fresh = _packed(lake, old_id, tmp_path / "work-fresh", FeatureCache(tmp_path / "cache-fresh"))
    assert fresh.info["missing_feature_files"] == [uri] and uri not in fresh.rows["feature_uri"].to_list()
    _sid, manifest, rows = load_snapshot_rows(lake, old_id)
    pinned = feature_uris(lake, rows, manifest).filter(pl.col("feature_uri") == uri)
    report = FeatureCache(tmp_path / "cache-fresh").fetch([uri], pins={uri: Pin(pinned["feature_size"][0],
                                                                                 pinned["feature_etag"][0])})
    assert report.missing == [uri] and "changed at the source since the lake recorded it" in report.errors[uri]


def test_a_feature_file_rewritten_in_place_is_not_taken_from_the_cache(sources: Path, ingest_demo,
                                                                       tmp_path: Path) -> None:
    """Bug pinned: a local feature file is hard-linked into the cache, so rewriting it in place changed the
    cached copy of the old object too; a cached copy must still have the pinned size and mtime."""
    lake = _mermaid_lake(ingest_demo, tmp_path / "lake", sources)
    cache = FeatureCache(tmp_path / "cache")
    sid = lake.create_snapshot(SnapshotSpec(name="before")).snapshot_id
    before = _packed(lake, sid, tmp_path / "work", cache)
    uri = before.rows["feature_uri"][0]
    rows, cols, feat = read_feature_file(uri)
    write_feature_file(uri, rows, cols, feat + 2.0)  # same inode: the hard link sees the new bytes
    again = _packed(lake, sid, tmp_path / "work-again", cache)
    assert again.info["missing_feature_files"] == [uri]  # the pinned object is gone; not packed as if it were


def test_same_snapshot_id_in_two_lakes_with_other_features_packs_anew(demo_sources, ingest_demo,
                                                                      tmp_path: Path) -> None:
    """Bug pinned: two lakes with different feature files but the same snapshot ID shared one pack
    (keyed by snapshot + split): the second trained on the first lake's vectors."""
    lakes, uris = [], []
    for i in (1, 2):
        src = tmp_path / f"src{i}"
        shutil.copytree(demo_sources.dest / "mermaid", src / "mermaid")
        shutil.copytree(demo_sources.dest / "api", src / "api")
        first = min((src / "mermaid").glob("*_featurevector"))
        if i == 2:
            _replace_features(first, 3.0)
        lakes.append(_mermaid_lake(ingest_demo, tmp_path / f"lake{i}", src))
    ids = [lake.create_snapshot(SnapshotSpec(name="same")).snapshot_id for lake in lakes]
    assert ids[0] == ids[1]  # the ID pins table versions and the recipe, not where the lake is
    cache, work = FeatureCache(tmp_path / "cache"), tmp_path / "work"
    packs = [_packed(lake, ids[0], work, cache) for lake in lakes]
    assert not packs[1].reused and packs[0].directory != packs[1].directory
    for packed in packs:
        for uri in packed.rows["feature_uri"].unique().to_list():
            uris.append(uri)
            np.testing.assert_array_equal(_vectors(packed, uri), _expected(uri, packed))
    assert _packed(lakes[1], ids[0], work, cache).reused  # the same lake again: reused


# --------------------------------------------------------------------------------------------------
# 3. an old snapshot reads its features where they were when it was built
# --------------------------------------------------------------------------------------------------


def test_old_snapshot_reads_the_root_it_pinned(sources: Path, ingest_demo, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug pinned: retraining an old snapshot read its features under the source's current
    `sources.root_uri`, not the root of the lake version the snapshot was built on."""
    lake = _mermaid_lake(ingest_demo, tmp_path / "lake", sources)
    old_id = lake.create_snapshot(SnapshotSpec(name="old root")).snapshot_id
    moved = tmp_path / "src2"
    shutil.copytree(sources, moved)  # the source moves (with an update: one image fewer)
    table = pq.read_table(moved / MERMAID_PARQUET)
    last = table.column("image_id")[0]
    pq.write_table(table.filter(pl.from_arrow(table)["image_id"].ne(last.as_py()).to_arrow()), moved / MERMAID_PARQUET)
    ingest_demo(tmp_path / "lake", moved, coralnet=None)
    roots = lake.sql("SELECT root_uri FROM sources WHERE site = 'mermaid'")["root_uri"].to_list()
    assert roots == [str(moved / "mermaid")]

    packed = _packed(lake, old_id, tmp_path / "work", FeatureCache(tmp_path / "cache"))
    assert packed.rows["feature_uri"].str.starts_with(str(sources / "mermaid") + "/").all()
    assert packed.info["dropped_missing_features"] == 0
    vacuum(lake)  # keeps the sources version the snapshot was built on
    packed = _packed(lake, old_id, tmp_path / "work-2", FeatureCache(tmp_path / "cache"))
    assert packed.rows["feature_uri"].str.starts_with(str(sources / "mermaid") + "/").all()

    shutil.rmtree(sources)  # the old root is gone: one line naming it, not a silent move to the new one
    monkeypatch.setenv("MERMAID_TRAIN_CACHE_DIR", str(tmp_path / "cache-3"))
    out = CliRunner().invoke(app, ["run", "--snapshot", old_id, "--lake", str(lake.uri), "--no-mlflow",
                                   "--runs-dir", str(tmp_path / "runs"), "--epochs", "1"])
    line = _one_line(out)
    assert f"error: {sources / 'mermaid'}: " in line and "is gone" in line and str(moved / "mermaid") in line
    assert "restore" in line and "mermaid-data snapshot create" in line
    assert not (tmp_path / "runs").exists()
