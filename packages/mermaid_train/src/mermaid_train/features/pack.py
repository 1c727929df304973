"""Packed point features: one array per snapshot + split, read by memory map while training.

``pack`` fetches the split's feature files into the cache (each object as the snapshot pinned it:
``features.pinned``), reads every needed file exactly once (threads: zlib releases the GIL), and writes
the annotated points' vectors into ``<work_dir>/packed/<snapshot_id>/<split_key>-<identity>/`` (the
identity digests the snapshot's content, the split and every feature object's URI, size and ETag):

================  ==================================================================================
``X.f32``/``.f16`` ``[n, dim]`` float32 (or float16 with ``dtype="float16"``: half the disk and I/O), row-major
``y.i32``         int32 ``[n]``, index into ``classes``
``split.u8``      uint8 ``[n]``: 0 train, 1 ref, 2 val
``rows.parquet``  the packed rows in the same order (split, class_key, annotation_id, image, source, ...)
``done.json``     written last (the folder is built under a temporary name and renamed): complete
================  ==================================================================================

Rows are packed grouped by feature file (each image's vectors are one contiguous ``pwrite``, so packing
never maps the whole array into memory). A second ``pack`` of the same rows and feature objects opens
the folder without reading any feature file. ``gather`` reads rows back as float32 in ascending file order.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from mermaid_data.lake import Lake
from mermaid_data.progress import Progress, SilentProgress

from mermaid_train import leftovers
from mermaid_train.errors import FeatureError, TrainConfigError, TrainDataError
from mermaid_train.features.cache import FeatureCache, Pin
from mermaid_train.features.npz import read_points
from mermaid_train.features.pinned import feature_objects, objects_digest
from mermaid_train.split import SPLIT_CODES, SplitResult

PACK_FORMAT = 4  # 4: rows.parquet keeps each file's pin (feature_size, feature_etag)
DONE_FILE = "done.json"
PACK_DTYPES = {"float32": ("X.f32", np.float32), "float16": ("X.f16", np.float16)}
ROW_COLUMNS = ("split", "class_key", "annotation_id", "image_id", "source_id", "site", "feature_uri", "feature_size",
               "feature_etag", "row", "col",
               "benthic_attribute_id", "growth_form_id", "benthic_attribute_name", "growth_form_name", "label_id")
#: Bytes of packed features that may stay mapped (in RSS) while training; above it, pages are dropped.
MAPPED_BUDGET = 2 << 30


def feature_uris(lake: Lake, rows: pl.DataFrame, manifest: dict | None = None) -> pl.DataFrame:
    """``rows`` plus ``feature_uri`` (the source's ``root_uri`` + "/" + ``feature_key``, null if unknown),
    ``feature_size`` and ``feature_etag``: as the snapshot of ``manifest`` pinned them (its lake version's
    ``sources``, its ``features`` version; see ``features.pinned``), else the lake's latest version."""
    return feature_objects(lake, rows, manifest)


@dataclass(frozen=True)
class PackedData:
    """One snapshot+split's point features, packed (see the module docstring)."""

    directory: Path
    x: np.ndarray  # memmap [n, dim], float32 or float16
    y: np.ndarray  # int32 [n], index into classes
    split: np.ndarray  # uint8 [n]: 0 train, 1 ref, 2 val
    classes: list[str]
    rows: pl.DataFrame  # rows in packed order
    info: dict = field(default_factory=dict)  # done.json: counts, dropped rows, fetch report, timings
    reused: bool = False  # True when an earlier pack() built the folder

    def indices(self, name: str) -> np.ndarray:
        """Packed row indices of the ``train`` / ``ref`` / ``val`` set, ascending."""
        if name not in SPLIT_CODES:
            raise KeyError(f"no set {name!r}; use one of {', '.join(SPLIT_CODES)}")
        return np.flatnonzero(self.split == SPLIT_CODES[name])

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    @property
    def dtype(self) -> str:
        return str(np.dtype(self.x.dtype))

    def __len__(self) -> int:
        return int(self.y.shape[0])


def gather(x: np.ndarray, indices: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``x[indices]`` as float32 (into ``out`` if given), reading the memmap in ascending row order.

    Afterwards the mapped pages are dropped from the process's RSS when the array is bigger than
    ``MAPPED_BUDGET`` (see ``release``).
    """
    n = len(indices)
    if out is None:
        out = np.empty((n, x.shape[1]), dtype=np.float32)
    if n > 1 and np.any(indices[1:] < indices[:-1]):
        order = np.argsort(indices, kind="stable")
        out[order] = x[indices[order]]
    else:
        out[...] = x[indices]
    release(x)
    return out


def release(x: np.ndarray) -> None:
    """Drop the mapped feature pages from this process's RSS (the page cache keeps them).

    Random row gathers from a memmap map whole fault-around windows (64 KiB per 5 KiB row), so an epoch
    maps the entire file into the process's RSS. Up to ``MAPPED_BUDGET`` that is fine (and re-faulting
    pages after every batch would cost ~15% of an epoch); above it, pages are dropped after each gather.
    """
    if x.nbytes > MAPPED_BUDGET:
        advise(x, "MADV_DONTNEED")


def advise(x: np.ndarray, advice: str) -> None:
    """``madvise`` the memmap behind ``x`` (no-op for plain arrays or where the advice is unknown)."""
    handle = getattr(x, "_mmap", None)
    if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, advice):
        try:
            handle.madvise(getattr(mmap, advice))
        except (OSError, ValueError):  # pragma: no cover - platform without the advice
            pass


def open_packed(directory: Path) -> PackedData:
    """Open a complete packed folder (one with ``done.json``)."""
    directory = Path(directory)
    info = json.loads((directory / DONE_FILE).read_text(encoding="utf-8"))
    n, dim = int(info["n"]), int(info["dim"])
    name, dtype = PACK_DTYPES[info.get("dtype", "float32")]
    x = np.memmap(directory / name, dtype=dtype, mode="r", shape=(n, dim)) if n else np.zeros((0, dim), dtype)
    y = np.fromfile(directory / "y.i32", dtype=np.int32)
    split = np.fromfile(directory / "split.u8", dtype=np.uint8)
    rows = pl.read_parquet(directory / "rows.parquet")
    if len(y) != n or len(split) != n or rows.height != n:
        raise FeatureError(
            f"packed arrays disagree ({n} rows in done.json, y {len(y)}, split {len(split)}, rows {rows.height})",
            where=str(directory), fix="delete this folder; the next run packs it again")
    return PackedData(directory, x, y, split, list(info["classes"]), rows, info, True)


def pack(
    split: SplitResult,
    *,
    snapshot_id: str,
    split_key: str,
    cache: FeatureCache,
    lake: Lake,
    work_dir: Path,
    missing_allowed_pct: float,
    dtype: str = "float32",
    progress: Progress | None = None,
    read_workers: int | None = None,
    manifest: dict | None = None,
) -> PackedData:
    """Fetch and pack the split's point features once; a second call with the same key just opens them.

    The folder is ``packed/<snapshot_id>/<split_key>[-f16]-<identity>``: ``identity`` is a digest of the
    snapshot's content (``manifest``'s ``content_sha256``), the split key, the dtype and every feature
    object the rows name as the lake pins it (URI, size, ETag), so a pack is reused only for the same
    rows read from the same feature objects (another lake holding a snapshot of the same ID, or a feature
    file replaced since, packs anew). A pack that lacked some feature files is not reused either.
    """
    if dtype not in PACK_DTYPES:
        raise TrainConfigError(f"pack dtype {dtype!r} is not one of {', '.join(PACK_DTYPES)}",
                               fix="pass pack_dtype='float32' (default) or 'float16'")
    progress = progress or SilentProgress()
    started = time.perf_counter()
    rows = feature_uris(lake, split.rows, manifest)
    objects = objects_digest(rows)
    identity = hashlib.sha256("\n".join((
        str(PACK_FORMAT), snapshot_id, str((manifest or {}).get("content_sha256", "")), split_key, dtype, objects,
        ",".join(split.classes))).encode("utf-8")).hexdigest()
    key = split_key if dtype == "float32" else f"{split_key}-f16"
    directory = Path(work_dir) / "packed" / snapshot_id / f"{key}-{identity[:12]}"
    if (directory / DONE_FILE).is_file():
        packed = open_packed(directory)
        if (packed.classes == list(split.classes) and packed.info.get("split_rows") == split.rows.height
                and packed.info.get("format") == PACK_FORMAT and packed.info.get("identity") == identity
                and not packed.info.get("missing_feature_file_count")):
            return packed
        shutil.rmtree(directory)  # an older format, or a pack that lacked feature files: rebuild
    elif directory.exists():
        shutil.rmtree(directory)  # never completed

    total = rows.height
    unique = rows.select("feature_uri", "feature_size", "feature_etag").unique("feature_uri", maintain_order=True) \
        .filter(pl.col("feature_uri").is_not_null())
    uris = unique["feature_uri"].to_list()
    pins = {uri: Pin(int(size), str(etag)) for uri, size, etag in unique.iter_rows() if size is not None
            and etag is not None}
    report = cache.fetch(uris, pins=pins, progress=progress)
    fetch_s = time.perf_counter() - started

    bad = rows["feature_uri"].is_null() | rows["feature_uri"].is_in(report.missing)
    n_bad = int(bad.sum())
    if n_bad and n_bad * 100.0 / total > missing_allowed_pct:
        listed = "; ".join(f"{u} ({report.errors.get(u, 'no feature key')})" for u in report.missing[:3]) or \
            "rows without a feature key"
        raise FeatureError(
            f"{n_bad:,} of {total:,} annotations ({n_bad * 100.0 / total:.1f}%) have no fetchable feature file "
            f"({len(report.missing):,} files), more than the {missing_allowed_pct:g}% allowed (e.g. {listed})",
            where=str(cache.cache_dir),
            fix="check the feature storage (AWS_ENDPOINT_URL / credentials, the network) and re-run (fetched "
            "files are kept), or raise missing_features_allowed (MERMAID_MISSING_FEATURES_ALLOWED)",
        )
    if n_bad:
        rows = rows.filter(~bad)
    if rows.height == 0:
        raise TrainDataError("no annotations left after dropping those without feature files",
                             fix="check the feature storage and re-run")

    # group rows by feature file (stable: the snapshot's order within an image)
    rows = rows.with_columns((pl.col("feature_uri").rank("dense") - 1).cast(pl.Int64).alias("__img"))
    rows = rows.sort("__img", maintain_order=True)
    img = rows["__img"].to_numpy()
    starts = np.flatnonzero(np.r_[True, img[1:] != img[:-1]])
    ends = np.r_[starts[1:], len(img)]
    file_uris = rows["feature_uri"].gather(starts).to_list()
    point_rows = rows["row"].to_numpy().astype(np.int64)
    point_cols = rows["col"].to_numpy().astype(np.int64)
    n = rows.height
    file_name, np_dtype = PACK_DTYPES[dtype]
    itemsize = np.dtype(np_dtype).itemsize

    y = rows["class_key"].cast(pl.Enum(split.classes)).to_physical().to_numpy().astype(np.int32)
    codes = rows["split"].replace_strict(SPLIT_CODES, return_dtype=pl.UInt8).to_numpy()

    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    leftovers.write_owner(tmp, "pack")  # a killed pack's folder is reclaimed by the next run (leftovers.clean)
    try:
        def points(i: int, dim: int | None = None) -> np.ndarray:
            a, b = int(starts[i]), int(ends[i])
            return read_points(cache.path_for(file_uris[i], pins.get(file_uris[i])), file_uris[i], point_rows[a:b],
                               point_cols[a:b], dim=dim, dtype=np_dtype)

        first = points(0)  # the first file gives the feature dimension (and fails early if corrupt)
        dim = first.shape[1]
        fd = os.open(tmp / file_name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, n * dim * itemsize)
            os.pwrite(fd, first.tobytes(), int(starts[0]) * dim * itemsize)

            def one(i: int) -> int:
                os.pwrite(fd, points(i, dim).tobytes(), int(starts[i]) * dim * itemsize)
                return int(ends[i] - starts[i])

            workers = read_workers or min(4, (os.cpu_count() or 2) + 1)
            with progress.task("pack point features", total=len(starts)) as task:
                task.advance()
                _run_all(one, range(1, len(starts)), workers, task)
            os.fsync(fd)
        finally:
            os.close(fd)
        y.tofile(tmp / "y.i32")
        codes.tofile(tmp / "split.u8")
        rows.select([c for c in ROW_COLUMNS if c in rows.columns]).write_parquet(tmp / "rows.parquet")
        info = {
            "format": PACK_FORMAT,
            "snapshot_id": snapshot_id,
            "split_key": split_key,
            "identity": identity,
            "feature_objects_sha256": objects,
            "dtype": dtype,
            "n": n,
            "dim": int(dim),
            "classes": list(split.classes),
            "counts": {name: int((codes == code).sum()) for name, code in SPLIT_CODES.items()},
            "images": len(starts),
            "split_rows": split.rows.height,
            "cache_dir": str(cache.cache_dir.resolve()),
            "dropped_missing_features": n_bad,
            "missing_feature_files": report.missing[:100],
            "missing_feature_file_count": len(report.missing),
            "fetch": {"requested": report.requested, "fetched": report.fetched, "cached": report.cached,
                      "missing": len(report.missing), "workers": report.workers},
            "fetch_seconds": round(fetch_s, 3),
            "pack_seconds": round(time.perf_counter() - started, 3),
        }
        (tmp / DONE_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        (tmp / leftovers.OWNER_FILE).unlink()
        try:
            os.rename(tmp, directory)
        except OSError:
            if not (directory / DONE_FILE).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another run packed the same key first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    packed = open_packed(directory)
    return PackedData(packed.directory, packed.x, packed.y, packed.split, packed.classes, packed.rows,
                      packed.info, False)


def _run_all(fn: Callable[[int], int], items, workers: int, task) -> None:
    """Run ``fn`` over ``items`` on threads (a bounded window); the first exception cancels the rest."""
    it = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pack") as pool:
        pending: set = set()
        try:
            while True:
                for item in it:
                    pending.add(pool.submit(fn, item))
                    if len(pending) >= workers * 4:
                        break
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()
                    task.advance()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
