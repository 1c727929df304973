"""Feature objects for training: a shared download cache, then one packed float32 array per snapshot+split.

``FeatureCache`` copies each image's pyspacer ``ImageFeatures`` file (a local path or ``s3://``) once into
``<cache_dir>/<sha256(uri)[:2]>/<sha256(uri)>``: parallel threads, a ``.part`` file renamed into place
(``os.replace``) only when complete, so an existing cache file is always whole and a crashed run's
leftover ``.part`` files are ignored; bounded retries with back-off for transient errors; a missing
object is reported, not retried. Local files are hard-linked when the cache is on the same file system.

``pack`` then reads every needed image file exactly once (threads: zlib releases the GIL), matches the
annotated (row, col) points to the file's points with numpy (``searchsorted`` on ``row * 65536 + col``;
duplicate points are identical vectors so any copy serves), and writes the vectors as float32 into
``<work_dir>/packed/<snapshot_id>/<split_key>/``:

==============  ==================================================================================
``X.f32``       float32 ``[n, dim]`` (row-major, memory-mapped when training)
``y.i32``       int32 ``[n]``, index into ``classes``
``split.u8``    uint8 ``[n]``: 0 train, 1 ref, 2 val
``rows.parquet`` the packed rows in the same order (split, class_key, annotation_id, image, source, ...)
``done.json``   written last (the folder is built under a temporary name and renamed): complete
==============  ==================================================================================

Rows are packed grouped by feature file (each image's vectors are one contiguous ``pwrite``, so packing
never maps the whole array into memory). A second ``pack`` with the same key opens the folder without
reading any feature file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import struct
import threading
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from mermaid_data import storage
from mermaid_data.errors import SourceUnreachableError
from mermaid_data.lake import Lake
from mermaid_data.progress import Progress, SilentProgress

from mermaid_train.errors import FeatureError, TrainDataError
from mermaid_train.split import SPLIT_CODES, SplitResult

PACK_FORMAT = 1
DONE_FILE = "done.json"
ROW_COLUMNS = ("split", "class_key", "annotation_id", "image_id", "source_id", "site", "feature_uri", "row", "col",
               "benthic_attribute_id", "growth_form_id", "benthic_attribute_name", "growth_form_name", "label_id")
_KEY_SHIFT = 65536  # row * 65536 + col: pyspacer stores rows/cols as uint16


# ----------------------------------------------------------------------------------------------------
# Download cache
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchReport:
    requested: int  # distinct URIs asked for
    fetched: int  # downloaded / linked / copied now
    cached: int  # already complete in the cache
    missing: list[str]  # feature URIs that could not be fetched (absent, or failing after the retries)
    errors: dict[str, str] = field(default_factory=dict)  # URI -> why it could not be fetched


class FeatureCache:
    """A directory of feature files keyed by ``sha256(uri)``, shared across runs (see module docstring)."""

    def __init__(self, cache_dir: Path, *, workers: int = 8, retries: int = 3, timeout_s: float = 30) -> None:
        self.cache_dir = Path(cache_dir)
        self.workers = max(1, int(workers))
        self.retries = max(1, int(retries))
        self.timeout_s = float(timeout_s)
        self._client = None
        self._lock = threading.Lock()

    def path_for(self, uri: str) -> Path:
        digest = hashlib.sha256(uri.encode("utf-8")).hexdigest()
        return self.cache_dir / digest[:2] / digest

    def fetch(self, uris: list[str], *, progress: Progress | None = None) -> FetchReport:
        """Make every URI's file present in the cache; return what was fetched, cached or missing."""
        unique = list(dict.fromkeys(uris))
        progress = progress or SilentProgress()
        fetched = cached = 0
        missing: list[str] = []
        errors: dict[str, str] = {}
        todo = []
        for uri in unique:
            if self.path_for(uri).is_file():
                cached += 1
            else:
                todo.append(uri)
        for parent in {self.path_for(uri).parent for uri in todo}:
            parent.mkdir(parents=True, exist_ok=True)
        if todo:
            with progress.task("fetch feature files", total=len(todo)) as task, \
                    ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fetch") as pool:
                for uri, error in zip(todo, pool.map(self._fetch_one, todo)):
                    if error is None:
                        fetched += 1
                    else:
                        missing.append(uri)
                        errors[uri] = error
                    task.advance()
        return FetchReport(len(unique), fetched, cached, missing, errors)

    # -- one object ----------------------------------------------------------------------------------

    def _fetch_one(self, uri: str) -> str | None:
        """None when the file is in the cache afterwards, else why not."""
        dest = self.path_for(uri)
        if dest.is_file():
            return None
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            source = storage.Uri.parse(uri) if "://" in uri else None  # None: a plain local path
        except Exception as exc:  # noqa: BLE001 - a malformed URI never heals
            return f"bad URI: {exc}"
        error = "not attempted"
        for attempt in range(self.retries):
            part = dest.with_name(f"{dest.name}.{uuid.uuid4().hex[:12]}.part")
            try:
                if source is None:
                    _link_or_copy(Path(uri).expanduser(), part)
                elif source.is_s3:
                    self._download(source, part)
                else:
                    _link_or_copy(Path(source.key), part)
                os.replace(part, dest)
                return None
            except FileNotFoundError:
                return "not found"
            except (OSError, SourceUnreachableError, _TransientError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # noqa: BLE001 - botocore errors and the like: retry, then report
                error = f"{type(exc).__name__}: {exc}"
            finally:
                part.unlink(missing_ok=True)
            if attempt + 1 < self.retries:
                time.sleep(min(2.0, 0.1 * 2**attempt))
        return error

    def _s3(self):
        with self._lock:
            if self._client is None:
                import boto3
                from botocore import UNSIGNED
                from botocore.config import Config
                from mermaid_data.settings import get_settings

                kwargs = {
                    "connect_timeout": self.timeout_s,
                    "read_timeout": self.timeout_s,
                    "retries": {"max_attempts": 1, "mode": "standard"},  # our own loop retries
                    "max_pool_connections": max(10, self.workers),
                }
                endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
                if endpoint:
                    kwargs["s3"] = {"addressing_style": "path"}
                if get_settings().s3_anonymous:
                    kwargs["signature_version"] = UNSIGNED
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=endpoint or None, config=Config(**kwargs))
            return self._client

    def _download(self, source: storage.Uri, part: Path) -> None:
        from botocore.exceptions import ClientError

        try:
            response = self._s3().get_object(Bucket=source.bucket, Key=source.key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(str(source)) from exc
            raise
        expected = int(response.get("ContentLength", -1))
        written = 0
        body = response["Body"]
        with open(part, "wb") as handle:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                handle.write(chunk)
                written += len(chunk)
        if expected >= 0 and written != expected:
            raise _TransientError(f"short read: {written} of {expected} bytes")


class _TransientError(Exception):
    pass


def _link_or_copy(source: Path, part: Path) -> None:
    try:
        os.link(source, part)
    except FileNotFoundError:
        if not source.is_file():
            raise
        shutil.copyfile(source, part)  # the cache directory vanished meanwhile: copy reports it
    except OSError:
        if not source.is_file():
            raise FileNotFoundError(str(source)) from None
        shutil.copyfile(source, part)


# ----------------------------------------------------------------------------------------------------
# Where each row's features live
# ----------------------------------------------------------------------------------------------------


def feature_uris(lake: Lake, rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` plus ``feature_uri`` = the source's ``root_uri`` + "/" + ``feature_key`` (null if unknown)."""
    table = lake.read("sources", ["site", "source_id", "root_uri"])
    if table is None:
        sources = pl.DataFrame(schema={"site": pl.String, "source_id": pl.String, "root_uri": pl.String})
    else:
        sources = pl.from_arrow(table)
    sources = sources.unique(["site", "source_id"], keep="last").rename({"root_uri": "__root_uri"})
    joined = rows.drop("feature_uri", strict=False).join(
        sources, on=["site", "source_id"], how="left", maintain_order="left")
    return joined.with_columns(
        (pl.col("__root_uri").str.strip_chars_end("/") + "/" + pl.col("feature_key").str.strip_chars_start("/"))
        .alias("feature_uri")
    ).drop("__root_uri")


# ----------------------------------------------------------------------------------------------------
# Packed arrays
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackedData:
    """One snapshot+split's point features, packed (see module docstring)."""

    directory: Path
    x: np.memmap  # float32 [n, dim]
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

    def __len__(self) -> int:
        return int(self.y.shape[0])


def open_packed(directory: Path) -> PackedData:
    """Open a complete packed folder (one with ``done.json``)."""
    directory = Path(directory)
    info = json.loads((directory / DONE_FILE).read_text(encoding="utf-8"))
    n, dim = int(info["n"]), int(info["dim"])
    x = np.memmap(directory / "X.f32", dtype=np.float32, mode="r", shape=(n, dim)) if n else np.zeros((0, dim), np.float32)
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
    progress: Progress | None = None,
    read_workers: int | None = None,
) -> PackedData:
    """Fetch and pack the split's point features once; a second call with the same key just opens them."""
    progress = progress or SilentProgress()
    directory = Path(work_dir) / "packed" / snapshot_id / split_key
    if (directory / DONE_FILE).is_file():
        packed = open_packed(directory)
        if packed.classes == list(split.classes) and packed.info.get("split_rows") == split.rows.height:
            return packed
        shutil.rmtree(directory)  # a different split under the same key: rebuild
    elif directory.exists():
        shutil.rmtree(directory)  # never completed
    started = time.perf_counter()

    rows = feature_uris(lake, split.rows)
    total = rows.height
    uris = rows["feature_uri"].drop_nulls().unique(maintain_order=True).to_list()
    report = cache.fetch(uris, progress=progress)
    fetch_s = time.perf_counter() - started

    bad = rows["feature_uri"].is_null() | rows["feature_uri"].is_in(report.missing)
    n_bad = int(bad.sum())
    if n_bad and n_bad * 100.0 / total > missing_allowed_pct:
        examples = report.missing[:3]
        listed = "; ".join(f"{u} ({report.errors.get(u, 'no feature key')})" for u in examples) or \
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

    y = rows["class_key"].cast(pl.Enum(split.classes)).to_physical().to_numpy().astype(np.int32)
    codes = rows["split"].replace_strict(SPLIT_CODES, return_dtype=pl.UInt8).to_numpy()

    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".tmp-{split_key}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        # the first file gives the feature dimension (and fails early if corrupt)
        first = _read_points(cache, file_uris[0], point_rows[starts[0]:ends[0]], point_cols[starts[0]:ends[0]])
        dim = first.shape[1]
        fd = os.open(tmp / "X.f32", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, n * dim * 4)
            os.pwrite(fd, first.tobytes(), int(starts[0]) * dim * 4)

            def one(i: int) -> int:
                a, b = int(starts[i]), int(ends[i])
                vectors = _read_points(cache, file_uris[i], point_rows[a:b], point_cols[a:b], dim=dim)
                os.pwrite(fd, vectors.tobytes(), a * dim * 4)
                return b - a

            workers = read_workers or min(4, (os.cpu_count() or 2) + 1)
            with progress.task("pack point features", total=len(starts)) as task:
                task.advance()
                _run_all(one, range(1, len(starts)), workers, task)
            os.fsync(fd)
        finally:
            os.close(fd)
        y.tofile(tmp / "y.i32")
        codes.tofile(tmp / "split.u8")
        keep = [c for c in ROW_COLUMNS if c in rows.columns]
        rows.select(keep).write_parquet(tmp / "rows.parquet")
        counts = {name: int((codes == code).sum()) for name, code in SPLIT_CODES.items()}
        info = {
            "format": PACK_FORMAT,
            "snapshot_id": snapshot_id,
            "split_key": split_key,
            "n": n,
            "dim": int(dim),
            "classes": list(split.classes),
            "counts": counts,
            "images": len(starts),
            "split_rows": split.rows.height,
            "cache_dir": str(cache.cache_dir.resolve()),
            "dropped_missing_features": n_bad,
            "missing_feature_files": report.missing[:100],
            "missing_feature_file_count": len(report.missing),
            "fetch": {"requested": report.requested, "fetched": report.fetched, "cached": report.cached,
                      "missing": len(report.missing)},
            "fetch_seconds": round(fetch_s, 3),
            "pack_seconds": round(time.perf_counter() - started, 3),
        }
        (tmp / DONE_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
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


def _read_points(cache: FeatureCache, uri: str, rows: np.ndarray, cols: np.ndarray, *, dim: int | None = None) -> np.ndarray:
    """The float32 vectors of the annotated points (rows, cols) of one feature file, in that order."""
    path = cache.path_for(uri)
    where = f"{uri} (cached as {path})"
    try:
        data = load_npz(path)
        meta, f_rows, f_cols, feat = data["meta"], data["rows"], data["cols"], data["feat"]
    except FileNotFoundError:
        raise FeatureError("feature file is not in the cache", where=where,
                           fix="re-run: the fetch step downloads it again") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, OSError, struct.error) as exc:
        path.unlink(missing_ok=True)  # the next run fetches it again
        raise FeatureError(
            f"corrupt or truncated feature file ({type(exc).__name__}: {exc})",
            where=where,
            fix="re-run to fetch it again (the cached copy was removed); if the source file itself is corrupt, "
            "re-extract this image's features and re-ingest, or drop the image",
        ) from None
    if len(meta) < 3 or not bool(meta[0]):
        raise FeatureError("legacy feature file without row/col positions", where=where,
                           fix="re-extract this image's features with pyspacer >= 0.3 (rows/cols stored)")
    if feat.ndim != 2 or feat.shape[0] != len(f_rows) or len(f_rows) != len(f_cols) or feat.shape[0] == 0:
        raise FeatureError(
            f"inconsistent feature file (feat {feat.shape}, rows {len(f_rows)}, cols {len(f_cols)})", where=where,
            fix="re-extract this image's features and re-ingest")
    if dim is not None and feat.shape[1] != dim:
        raise FeatureError(f"feature dimension {feat.shape[1]} differs from the other files' {dim}", where=where,
                           fix="extract every image's features with the same feature extractor")
    keys = f_rows.astype(np.int64) * _KEY_SHIFT + f_cols.astype(np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    wanted = rows * _KEY_SHIFT + cols
    pos = np.searchsorted(sorted_keys, wanted)
    pos_clipped = np.minimum(pos, len(sorted_keys) - 1)
    found = sorted_keys[pos_clipped] == wanted
    if not found.all():
        bad = np.flatnonzero(~found)
        r, c = int(rows[bad[0]]), int(cols[bad[0]])
        raise FeatureError(
            f"feature file has no point at (row, col) = ({r}, {c}) that the annotations name "
            f"({len(bad)} of {len(rows)} annotated points missing)",
            where=where,
            fix="re-extract this image's features at the annotated points and re-ingest, or drop the image's "
            "annotations from the snapshot",
        )
    return np.ascontiguousarray(feat[order[pos_clipped]], dtype=np.float32)


_NPY_HEADER = re.compile(
    r"\{'descr':\s*'([<>|=][a-z]\d+)',\s*'fortran_order':\s*False,\s*'shape':\s*\(((?:\d+,?\s*)*)\),?\s*\}")


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (what ``np.load`` returns), read in one pass.

    Each member is inflated with one ``zlib.decompress`` call and checked against its CRC-32, and the
    usual npy headers are parsed with a regular expression instead of ``ast.literal_eval``: about half
    the CPU of ``np.load`` on pyspacer's small feature files. Anything unusual (a Fortran-ordered or
    structured array) goes through ``numpy.lib.format``.
    """
    buf = Path(path).read_bytes()
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(io.BytesIO(buf)) as archive:
        for info in archive.infolist():
            start = info.header_offset
            if buf[start:start + 4] != b"PK\x03\x04":
                raise zipfile.BadZipFile(f"bad local header for {info.filename}")
            name_len, extra_len = struct.unpack("<HH", buf[start + 26:start + 30])
            begin = start + 30 + name_len + extra_len
            raw = buf[begin:begin + info.compress_size]
            if len(raw) != info.compress_size:
                raise EOFError(f"{info.filename}: truncated")
            if info.compress_type == zipfile.ZIP_DEFLATED:
                payload = zlib.decompress(raw, -15, info.file_size)
            elif info.compress_type == zipfile.ZIP_STORED:
                payload = raw
            else:
                raise ValueError(f"{info.filename}: unsupported compression {info.compress_type}")
            if len(payload) != info.file_size or zlib.crc32(payload) != info.CRC:
                raise zipfile.BadZipFile(f"{info.filename}: CRC-32 or size mismatch")
            key = info.filename.removesuffix(".npy")
            out[key] = _npy_from_bytes(payload)
    return out


def _npy_from_bytes(payload: bytes) -> np.ndarray:
    if payload[:6] != b"\x93NUMPY":
        raise ValueError("not an npy array")
    major = payload[6]
    if major == 1:
        (length,) = struct.unpack("<H", payload[8:10])
        start = 10
    else:
        (length,) = struct.unpack("<I", payload[8:12])
        start = 12
    header = payload[start:start + length].decode("latin1")
    match = _NPY_HEADER.match(header)
    if match is None:
        return np.lib.format.read_array(io.BytesIO(payload), allow_pickle=False)
    dtype = np.dtype(match.group(1))
    shape = tuple(int(v) for v in match.group(2).replace(",", " ").split())
    count = int(np.prod(shape)) if shape else 1
    body = memoryview(payload)[start + length:]
    if len(body) != count * dtype.itemsize:
        raise ValueError(f"npy body has {len(body)} bytes, expected {count * dtype.itemsize}")
    return np.frombuffer(body, dtype=dtype, count=count).reshape(shape)
