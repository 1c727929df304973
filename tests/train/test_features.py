"""Feature cache and packing: atomic + resumable fetches (local and S3), packed vectors, reuse, bad files."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from mermaid_data.demo.features import read_feature_file, write_feature_file
from mermaid_train.errors import FeatureError
from mermaid_train.features import FeatureCache, Pin, feature_uris, gather, pack
from mermaid_train.features import cache as cache_mod
from mermaid_train.features import npz as npz_mod
from spacer.data_classes import DataLocation, ImageFeatures


@pytest.fixture(scope="module")
def split(train_packed):
    return train_packed[0]


@pytest.fixture(scope="module")
def uris(train_lake, split) -> list[str]:
    return feature_uris(train_lake.lake, split.rows)["feature_uri"].unique(maintain_order=True).to_list()


@pytest.fixture(scope="module")
def pins(train_lake, split) -> dict[str, Pin]:
    """URI -> what the lake's features table records about it (the key the pack caches it under)."""
    objects = feature_uris(train_lake.lake, split.rows).unique("feature_uri")
    return {u: Pin(s, e) for u, s, e in objects.select("feature_uri", "feature_size", "feature_etag").iter_rows()}


def _plant(cache: FeatureCache, uri: str, pin: Pin, data: bytes) -> Path:
    """A damaged cached copy of ``uri`` that looks like the pinned object to a stat (same size and mtime)."""
    assert len(data) == pin.size
    target = cache.path_for(uri, pin)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    mtime = os.stat(uri).st_mtime_ns
    os.utime(target, ns=(mtime, mtime))
    assert cache.is_cached(uri, pin)
    return target


def _pack(split, train_lake, work: Path, cache: FeatureCache, key: str = "k", allowed: float = 5.0):
    return pack(split, snapshot_id=train_lake.snapshot_id, split_key=key, cache=cache, lake=train_lake.lake,
                work_dir=work, missing_allowed_pct=allowed)


def _nothing_half_written(work: Path) -> None:
    root = work / "packed"
    leftovers = [p for p in root.rglob("*") if p.is_dir()] if root.exists() else []
    assert all(not p.name.startswith(("k-", ".tmp-")) for p in leftovers), leftovers


# --------------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------------


def test_feature_uris_join_the_source_roots(train_lake, split) -> None:
    """Bug pinned: feature keys are relative to their source's root_uri, not to the lake."""
    rows = feature_uris(train_lake.lake, split.rows)
    assert rows.height == split.rows.height and rows["feature_uri"].null_count() == 0
    sample = rows.unique("feature_uri").head(5)
    for uri, key in sample.select("feature_uri", "feature_key").rows():
        assert uri.endswith("/" + key) and Path(uri).is_file()


def test_leftover_part_file_is_ignored_and_redone(uris, tmp_path: Path) -> None:
    """Bug pinned: a crashed run's partial download must never be taken for a complete cached file."""
    cache = FeatureCache(tmp_path / "cache")
    dest = cache.path_for(uris[0])
    dest.parent.mkdir(parents=True)
    for name in (f"{dest.name}.part", f"{dest.name}.0123456789ab.part"):
        (dest.parent / name).write_bytes(b"PK\x03\x04 half a zip")
    report = cache.fetch([uris[0]])
    assert (report.requested, report.fetched, report.cached, report.missing) == (1, 1, 0, [])
    assert dest.read_bytes() == Path(uris[0]).read_bytes()
    assert cache.fetch([uris[0]]).cached == 1


def test_failed_copy_leaves_no_file_behind(uris, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug pinned: a copy that dies half-way must leave neither the cache file nor a .part file."""
    def half_then_fail(source: Path, part: Path, pin=None) -> None:
        part.write_bytes(source.read_bytes()[:100])
        raise OSError("disk on fire")

    monkeypatch.setattr(cache_mod, "_link_or_copy", half_then_fail)
    cache = FeatureCache(tmp_path / "cache", retries=2)
    report = cache.fetch(uris[:2])
    assert report.missing == uris[:2] and "disk on fire" in report.errors[uris[0]]
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_fetch_resumes_where_it_stopped(uris, tmp_path: Path) -> None:
    """Bug pinned: a re-run must not fetch again what an interrupted run already completed."""
    cache = FeatureCache(tmp_path / "cache", workers=4)
    half = len(uris) // 2
    first = cache.fetch(uris[:half])
    assert (first.fetched, first.cached) == (half, 0)
    second = cache.fetch(uris + uris[:3])  # duplicates count once
    assert (second.requested, second.fetched, second.cached, second.missing) == (len(uris), len(uris) - half, half, [])
    for uri in uris[:5]:
        assert cache.path_for(uri).read_bytes() == Path(uri).read_bytes()


def test_missing_local_file_is_reported_without_retrying(tmp_path: Path) -> None:
    """Bug pinned: an absent object retried with back-off (slow) or raising instead of being counted."""
    cache = FeatureCache(tmp_path / "cache", retries=5)
    started = time.perf_counter()
    report = cache.fetch([str(tmp_path / "nope.featurevector")])
    assert report.missing == [str(tmp_path / "nope.featurevector")] and report.fetched == 0
    assert report.errors[report.missing[0]] == "not found"
    assert time.perf_counter() - started < 1.0


def test_fetch_from_s3(s3, s3_bucket, uris, tmp_path: Path) -> None:
    """Bug pinned: features served from S3 (moto) must land byte-identical; a missing key is counted."""
    bucket = s3_bucket("feat")
    client = s3.client()
    keys = []
    for i, uri in enumerate(uris[:4]):
        key = f"features/img{i}.featurevector"
        client.upload_file(uri, bucket, key)
        keys.append(f"s3://{bucket}/{key}")
    cache = FeatureCache(tmp_path / "cache", workers=3, retries=2)
    report = cache.fetch([*keys, f"s3://{bucket}/features/absent.featurevector"])
    assert (report.requested, report.fetched, report.cached) == (5, 4, 0)
    assert report.missing == [f"s3://{bucket}/features/absent.featurevector"]
    for key, uri in zip(keys, uris):
        assert cache.path_for(key).read_bytes() == Path(uri).read_bytes()
    assert cache.fetch(keys).cached == 4


# --------------------------------------------------------------------------------------------------
# pack
# --------------------------------------------------------------------------------------------------


def test_packed_vectors_match_pyspacer_features(train_packed) -> None:
    """Bug pinned: point vectors matched to the wrong (row, col), class or set."""
    split, packed = train_packed
    assert len(packed) == split.rows.height and packed.x.shape == (len(packed), 1280)
    assert packed.x.dtype == np.float32 and packed.info["dropped_missing_features"] == 0
    rows = packed.rows
    assert (np.asarray(packed.classes)[packed.y] == rows["class_key"].to_numpy()).all()
    assert (np.array(["train", "ref", "val"])[packed.split] == rows["split"].to_numpy()).all()
    assert sorted(rows["annotation_id"].to_list()) == sorted(split.rows["annotation_id"].to_list())
    assert {n: len(packed.indices(n)) for n in ("train", "ref", "val")} == split.counts()
    rng = np.random.default_rng(0)
    for i in rng.choice(len(packed), 25, replace=False):
        uri, r, c = rows.row(int(i), named=True)["feature_uri"], rows["row"][int(i)], rows["col"][int(i)]
        expected = ImageFeatures.load(DataLocation("filesystem", uri))[(r, c)]
        np.testing.assert_array_equal(packed.x[i], np.asarray(expected, dtype=np.float32))


def test_second_pack_reuses_the_arrays_without_reading_features(train_lake, split, tmp_path: Path) -> None:
    """Bug pinned: a second run on the same snapshot+split re-reading and re-packing every feature file."""
    cache = FeatureCache(tmp_path / "cache")
    started = time.perf_counter()
    first = _pack(split, train_lake, tmp_path / "work", cache)
    first_s = time.perf_counter() - started
    x_file = first.directory / "X.f32"
    stamp = (x_file.stat().st_mtime_ns, (first.directory / "done.json").read_bytes())
    shutil.rmtree(tmp_path / "cache")  # any feature read now would fail
    started = time.perf_counter()
    second = _pack(split, train_lake, tmp_path / "work", cache)
    second_s = time.perf_counter() - started
    assert not first.reused and second.reused
    assert (x_file.stat().st_mtime_ns, (first.directory / "done.json").read_bytes()) == stamp
    np.testing.assert_array_equal(np.asarray(first.x), np.asarray(second.x))
    assert second.rows.equals(first.rows)
    assert second_s < first_s, (first_s, second_s)


def test_corrupt_feature_file_names_the_file_and_writes_nothing(train_lake, split, uris, pins, tmp_path: Path) -> None:
    """Bug pinned: a corrupt feature file crashing with a zipfile traceback, or leaving a half pack."""
    cache = FeatureCache(tmp_path / "cache")
    bad = _plant(cache, uris[3], pins[uris[3]], b"this is not a feature file at all".ljust(pins[uris[3]].size, b"!"))
    with pytest.raises(FeatureError, match="corrupt or truncated feature file") as info:
        _pack(split, train_lake, tmp_path / "work", cache)
    assert uris[3] in str(info.value) and "Fix:" in str(info.value)
    _nothing_half_written(tmp_path / "work")
    assert not bad.exists()  # removed so that a re-run fetches it again


def test_truncated_cached_copy_is_fetched_again(train_lake, split, uris, pins, tmp_path: Path) -> None:
    """Bug pinned: a cached copy that is not the pinned object (another size) taken as complete."""
    cache = FeatureCache(tmp_path / "cache")
    bad = cache.path_for(uris[0], pins[uris[0]])
    bad.parent.mkdir(parents=True)
    data = Path(uris[0]).read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    assert not cache.is_cached(uris[0], pins[uris[0]])
    packed = _pack(split, train_lake, tmp_path / "work", cache)
    assert packed.info["fetch"]["fetched"] == packed.info["fetch"]["requested"] and bad.read_bytes() == data


def test_truncated_feature_file_is_a_feature_error(uris, tmp_path: Path) -> None:
    data = Path(uris[0]).read_bytes()
    cut = tmp_path / "cut.featurevector"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FeatureError, match="corrupt or truncated") as info:
        npz_mod.read_points(cut, uris[0], np.array([0]), np.array([0]))
    assert uris[0] in str(info.value) and not cut.exists()


def test_feature_file_missing_an_annotated_point(train_lake, split, uris, tmp_path: Path) -> None:
    """Bug pinned: annotations naming a point the feature file lacks (pyspacer's RowColumnMismatchError)."""
    rows, cols, feat = read_feature_file(uris[1])
    rows_of_image = feature_uris(train_lake.lake, split.rows).filter(pl.col("feature_uri") == uris[1])
    r, c = rows_of_image["row"][0], rows_of_image["col"][0]
    keep = ~((rows == r) & (cols == c))
    target = tmp_path / "fewer.featurevector"
    write_feature_file(target, rows[keep], cols[keep], feat[keep])
    with pytest.raises(FeatureError, match=rf"no point at \(row, col\) = \({r}, {c}\)") as info:
        npz_mod.read_points(target, uris[1], rows_of_image["row"].to_numpy(), rows_of_image["col"].to_numpy())
    assert uris[1] in str(info.value)


def test_duplicate_points_get_their_identical_vector(tmp_path: Path) -> None:
    """Bug pinned: duplicate (row, col) points (CoralNet allows them) failing or getting another point's vector."""
    cache = FeatureCache(tmp_path / "cache")
    uri = str(tmp_path / "img.featurevector")
    rows = np.array([5, 9, 5, 7], dtype=np.uint16)
    cols = np.array([1, 2, 1, 3], dtype=np.uint16)
    feat = np.array([[1.0, 1.5], [2.0, 2.5], [1.0, 1.5], [3.0, 3.5]])
    write_feature_file(uri, rows, cols, feat)
    assert cache.fetch([uri]).fetched == 1
    got = npz_mod.read_points(cache.path_for(uri), uri, np.array([7, 5, 5, 9]), np.array([3, 1, 1, 2]))
    np.testing.assert_array_equal(got, np.array([[3, 3.5], [1, 1.5], [1, 1.5], [2, 2.5]], dtype=np.float32))


def test_unfetchable_features_count_against_the_tolerance(train_lake, split, tmp_path: Path) -> None:
    """Bug pinned: missing feature objects silently dropped beyond the allowed share (or failing below it)."""
    images = split.rows.select("image_id").unique(maintain_order=True)["image_id"].head(2).to_list()
    broken = dataclasses.replace(split, rows=split.rows.with_columns(
        pl.when(pl.col("image_id").is_in(images)).then(pl.lit("gone/nowhere.featurevector"))
        .otherwise(pl.col("feature_key")).alias("feature_key")))
    lost = int(split.rows["image_id"].is_in(images).sum())
    cache = FeatureCache(tmp_path / "cache", retries=1)
    with pytest.raises(FeatureError, match=rf"{lost:,} of {split.rows.height:,} annotations .*gone/nowhere") as info:
        _pack(broken, train_lake, tmp_path / "work", cache, allowed=0.0)
    assert "missing_features_allowed" in str(info.value)
    _nothing_half_written(tmp_path / "work")
    packed = _pack(broken, train_lake, tmp_path / "work", cache, allowed=100.0)
    assert len(packed) == split.rows.height - lost
    assert packed.info["dropped_missing_features"] == lost
    assert not packed.rows["image_id"].is_in(images).any()


def test_pack_reads_each_feature_file_once(train_lake, split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug pinned: feature files decompressed once per annotation (or per set) instead of once per image."""
    opened: list[str] = []
    real_load = npz_mod.load_npz

    def counting_load(path):
        opened.append(os.fspath(path))
        return real_load(path)

    monkeypatch.setattr(npz_mod, "load_npz", counting_load)
    packed = _pack(split, train_lake, tmp_path / "work", FeatureCache(tmp_path / "cache"))
    assert len(opened) == len(set(opened)) == packed.info["images"] == packed.rows["feature_uri"].n_unique()


def test_load_npz_reads_what_np_load_reads(tmp_path: Path) -> None:
    """Bug pinned: the fast npz reader disagreeing with numpy on pyspacer's files or unusual arrays."""
    features = ImageFeatures.make_random([1, 2, 3, 2], 16)
    features.store(DataLocation("filesystem", str(tmp_path / "spacer.npz")))
    np.savez(tmp_path / "odd.npz", fortran=np.asfortranarray(np.arange(12.0).reshape(3, 4)), scalar=np.int32(7),
             empty=np.zeros((0, 5), np.float32), names=np.array(["a", "bc"]))
    for name in ("spacer.npz", "odd.npz"):
        ours = npz_mod.load_npz(tmp_path / name)
        with np.load(tmp_path / name) as expected:
            assert sorted(ours) == sorted(expected.files)
            for key in expected.files:
                assert ours[key].dtype == expected[key].dtype and ours[key].shape == expected[key].shape
                np.testing.assert_array_equal(ours[key], expected[key])


def test_bit_flip_in_a_feature_file_is_caught(train_lake, split, uris, pins, tmp_path: Path) -> None:
    """Bug pinned: a damaged feature file that still inflates being packed with wrong vectors (CRC-32 check)."""
    cache = FeatureCache(tmp_path / "cache")
    data = bytearray(Path(uris[2]).read_bytes())
    data[len(data) // 3] ^= 0x01
    _plant(cache, uris[2], pins[uris[2]], bytes(data))
    with pytest.raises(FeatureError, match="corrupt or truncated") as info:
        _pack(split, train_lake, tmp_path / "work", cache)
    assert uris[2] in str(info.value)
    _nothing_half_written(tmp_path / "work")


def test_float16_pack_holds_the_float32_vectors_halved(train_lake, split, train_packed, tmp_path: Path) -> None:
    """Bug pinned: a float16 pack with other rows or vectors than the float32 one (it must only round them)."""
    full = train_packed[1]
    half = pack(split, snapshot_id=train_lake.snapshot_id, split_key="k", dtype="float16",
                cache=FeatureCache(tmp_path / "cache"), lake=train_lake.lake, work_dir=tmp_path / "work",
                missing_allowed_pct=5.0)
    assert half.directory.name.startswith("k-f16-") and (half.directory / "X.f16").is_file()
    assert half.dtype == "float16" and half.x.nbytes * 2 == full.x.nbytes
    assert half.rows["annotation_id"].equals(full.rows["annotation_id"]) and np.array_equal(half.y, full.y)
    np.testing.assert_array_equal(np.asarray(half.x), np.asarray(full.x).astype(np.float16))
    got = gather(half.x, np.array([5, 1, 3]))
    assert got.dtype == np.float32 and np.array_equal(got, np.asarray(half.x)[[5, 1, 3]].astype(np.float32))


def test_fetch_parallelism_is_configurable(s3, s3_bucket, uris, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug pinned: S3 fetches capped at a handful of requests (real buckets need ~50 in flight)."""
    from mermaid_train.options import get_train_settings
    from mermaid_train.runner import TrainingRunner

    assert get_train_settings().fetch_workers == 50 and FeatureCache(tmp_path / "c").workers == 50
    monkeypatch.setenv("MERMAID_FEATURE_FETCH_WORKERS", "12")
    assert TrainingRunner().fetch_workers == 12 and TrainingRunner(fetch_workers=3).fetch_workers == 3
    bucket = s3_bucket("many")
    client = s3.client()
    keys = []
    for i, uri in enumerate(uris[:20]):
        client.upload_file(uri, bucket, f"f/{i}.featurevector")
        keys.append(f"s3://{bucket}/f/{i}.featurevector")
    report = FeatureCache(tmp_path / "cache", workers=16).fetch(keys)
    assert (report.fetched, report.workers, report.missing) == (20, 16, [])
