"""Reading pyspacer ``ImageFeatures`` files: the ``.npz`` container and the vectors of the annotated points.

``load_npz`` inflates each member with one ``zlib.decompress`` call checked against its CRC-32 and
parses the usual npy headers with a regular expression instead of ``ast.literal_eval``: about half the
CPU of ``np.load`` on pyspacer's small feature files. Anything unusual (a Fortran-ordered or structured
array) goes through ``numpy.lib.format``.

``read_points`` matches the annotated (row, col) points to the file's points with numpy
(``searchsorted`` on ``row * 65536 + col``; duplicate points are identical vectors, so any copy serves).
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from mermaid_train.errors import FeatureError

_KEY_SHIFT = 65536  # row * 65536 + col: pyspacer stores rows/cols as uint16
_NPY_HEADER = re.compile(
    r"\{'descr':\s*'([<>|=][a-z]\d+)',\s*'fortran_order':\s*False,\s*'shape':\s*\(((?:\d+,?\s*)*)\),?\s*\}")


def read_points(path: Path, uri: str, rows: np.ndarray, cols: np.ndarray, *, dim: int | None = None,
                dtype=np.float32) -> np.ndarray:
    """The vectors (as ``dtype``) of the annotated points (rows, cols) of one cached feature file, in order.

    A corrupt file is removed from the cache (the next run fetches it again) and reported.
    """
    f_rows, f_cols, feat = read_features(path, uri, dim=dim)
    index, found = locate(f_rows, f_cols, rows, cols)
    if not found.all():
        bad = np.flatnonzero(~found)
        r, c = int(rows[bad[0]]), int(cols[bad[0]])
        raise FeatureError(
            f"feature file has no point at (row, col) = ({r}, {c}) that the annotations name "
            f"({len(bad)} of {len(rows)} annotated points missing)",
            where=f"{uri} (cached as {path})",
            fix="re-extract this image's features at the annotated points and re-ingest, or drop the image's "
            "annotations from the snapshot",
        )
    return np.ascontiguousarray(feat[index], dtype=dtype)


def read_features(path: Path, uri: str, *, dim: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, cols, feat)`` of one cached feature file, checked (positions stored, shapes agree, ``dim``)."""
    where = f"{uri} (cached as {path})"
    try:
        data = load_npz(path)
        meta, f_rows, f_cols, feat = data["meta"], data["rows"], data["cols"], data["feat"]
    except FileNotFoundError:
        raise FeatureError("feature file is not in the cache", where=where,
                           fix="re-run: the fetch step downloads it again") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, OSError, struct.error) as exc:
        path.unlink(missing_ok=True)
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
    return f_rows, f_cols, feat


def locate(f_rows: np.ndarray, f_cols: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(index into the file's points, found)`` for each wanted (row, col) (module docstring)."""
    keys = f_rows.astype(np.int64) * _KEY_SHIFT + f_cols.astype(np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    wanted = np.asarray(rows, dtype=np.int64) * _KEY_SHIFT + np.asarray(cols, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, wanted), len(sorted_keys) - 1)
    return order[pos], sorted_keys[pos] == wanted


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (what ``np.load`` returns), read in one pass (module docstring)."""
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
            out[info.filename.removesuffix(".npy")] = _npy_from_bytes(payload)
    return out


def _npy_from_bytes(payload: bytes) -> np.ndarray:
    if payload[:6] != b"\x93NUMPY":
        raise ValueError("not an npy array")
    if payload[6] == 1:
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
