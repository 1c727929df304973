"""``mermaid-train predict``: any model on new points, the top-k classes with names and calibrated scores.

``predict(model, output=..., snapshot=... | features=[...], points_csv=...)`` in four stages:

1. **Check** the options and the output path (its folder must exist; ``.parquet`` or ``.csv``, or
   ``format``), then **load** the model (``model.load``: ``models:/``, ``runs:/``, a classifier file).
2. **Points**: every annotation of a snapshot (``annotation_id, site, source_id, image_id, row, col``; the
   feature files from the lake's source roots, as training finds them), or pyspacer feature files given
   as files or prefixes (every ``*.featurevector`` / ``*_featurevector`` below a prefix, local or
   ``s3://``) with every point of each file, or the points a ``--points`` CSV selects (columns
   ``file`` or ``image``, ``row``, ``col``; identifiers ``feature_file, row, col``).
3. **Features** through the training feature cache (``features.cache``: each file fetched once, in
   parallel), read on threads a bounded window ahead of the classifier, ``ranking.CHUNK`` points per
   ``predict_proba`` call.
4. **Output**: identifiers + ``ranking.prediction_columns`` (top-k keys with BA / GF ids and names,
   scores, ``low_confidence`` under ``min_confidence``), written through a temporary file: a failed run
   leaves nothing behind.

Names come from the lake's taxonomy (with a snapshot, at its pinned versions; with ``lake``, the current
one), else from the taxonomy bundled with ``mermaid_data``; names that taxonomy lacks come from the
model's own ``classes.json`` / ``classes.csv``.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from mermaid_data.progress import Progress, SilentProgress

from mermaid_train.errors import PredictInputError, TrainConfigError
from mermaid_train.labels import ClassLabels, TaxonomyNames
from mermaid_train.model import ranking

FORMATS = ("parquet", "csv")
FEATURE_SUFFIXES = (".featurevector", "_featurevector")
SNAPSHOT_ID_COLUMNS = ("annotation_id", "site", "source_id", "image_id", "row", "col")
FEATURE_ID_COLUMNS = ("feature_file", "row", "col")
MAX_POSITION = 65535  # pyspacer stores rows and cols as uint16
READ_AHEAD = 64  # feature files read ahead of the classifier


@dataclass(frozen=True)
class Prediction:
    """What one ``predict`` call wrote, and how long each stage took."""

    output: Path
    format: str
    points: int
    files: int
    classes: int
    top_k: int
    min_confidence: float | None
    low_confidence: int
    model: str  # what the model URI resolved to
    names_from: str
    seconds: dict[str, float]
    summary: pl.DataFrame  # per predicted class: points, share, mean confidence (low-confidence points as one row)
    fetch: dict[str, int] = field(default_factory=dict)

    @property
    def points_per_second(self) -> float:
        busy = self.seconds.get("features_and_classify", 0.0)
        return self.points / busy if busy else float("nan")


@dataclass(frozen=True)
class _Points:
    """Points grouped by feature file: ``table`` (identifiers + ``feature_uri``) sorted so each file is one run."""

    table: pl.DataFrame | None  # None: every point of each file (the file decides)
    files: list[str]
    starts: np.ndarray
    ends: np.ndarray
    origin: str  # what names the points, for errors ("the snapshot's annotations", "POINTS.csv")


def check_output(output: Path, format: str | None) -> str:
    """The output format (``format`` or the file's extension); the folder must exist and be writable."""
    from mermaid_data.output import check_output as check_path

    chosen = (format or "").lower() or {".parquet": "parquet", ".csv": "csv"}.get(Path(output).suffix.lower())
    if chosen not in FORMATS:
        raise TrainConfigError(
            f"cannot tell the output format from {Path(output).name!r}" if not format
            else f"--format {format!r} is not one of {', '.join(FORMATS)}",
            where=str(output), fix="name the file .parquet or .csv, or pass --format parquet|csv")
    check_path(Path(output))
    return chosen


def predict(
    model: str,
    *,
    output: str | Path,
    snapshot: str | None = None,
    lake: str | None = None,
    features: Iterable[str] = (),
    points_csv: str | Path | None = None,
    top_k: int = ranking.DEFAULT_TOP_K,
    min_confidence: float | None = None,
    format: str | None = None,
    tracking_uri: str | None = None,
    cache_dir: str | Path | None = None,
    fetch_workers: int | None = None,
    progress: Progress | None = None,
) -> Prediction:
    """Predict every point of a snapshot or of feature files with ``model`` (module docstring)."""
    from mermaid_train.features import FeatureCache
    from mermaid_train.model.load import load_model
    from mermaid_train.options import get_train_settings

    features = list(features)
    progress = progress or SilentProgress()
    output = Path(output)
    _check_options(snapshot, features, points_csv, top_k, min_confidence)
    chosen_format = check_output(output, format)
    settings = get_train_settings()
    cache = FeatureCache(Path(cache_dir or settings.cache_dir).expanduser() / "features",
                         workers=int(fetch_workers or settings.fetch_workers))
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    loaded = load_model(model, tracking_uri=tracking_uri)
    seconds["load_model"] = time.perf_counter() - started

    started = time.perf_counter()
    if snapshot is not None:
        points, taxonomy = _snapshot_points(snapshot, lake)
    else:
        points = _feature_points(features, points_csv)
        from mermaid_data.lake import Lake

        taxonomy = TaxonomyNames.from_lake(Lake.open(lake)) if lake else TaxonomyNames.bundled()
    labels = taxonomy.labels(loaded.classes).fill(loaded.labels)
    seconds["points"] = time.perf_counter() - started

    started = time.perf_counter()
    report = cache.fetch(points.files, progress=progress)
    if report.missing:
        first = report.missing[0]
        raise PredictInputError(
            f"{len(report.missing):,} of {len(points.files):,} feature files cannot be read "
            f"({report.errors.get(first, 'not found')})", where=first,
            fix="check the paths or the feature storage (AWS_ENDPOINT_URL, credentials, the network) and re-run "
            "(fetched files are kept)")
    seconds["fetch"] = time.perf_counter() - started

    started = time.perf_counter()
    ids, columns = _classify(points, loaded, labels, cache, top_k=top_k, min_confidence=min_confidence,
                             progress=progress)
    seconds["features_and_classify"] = time.perf_counter() - started

    started = time.perf_counter()
    frame = _frame(ids, columns)
    from mermaid_data.output import write_output

    write_output(output, (lambda p: frame.write_parquet(p)) if chosen_format == "parquet" else
                 (lambda p: frame.write_csv(p)))
    seconds["write"] = time.perf_counter() - started
    return Prediction(output, chosen_format, frame.height, len(points.files), len(loaded.classes),
                      min(int(top_k), len(loaded.classes)), min_confidence, int(frame["low_confidence"].sum()),
                      loaded.source, taxonomy.source, seconds, summarize(frame),
                      {"requested": report.requested, "fetched": report.fetched, "cached": report.cached})


def summarize(frame: pl.DataFrame) -> pl.DataFrame:
    """Per predicted class (low-confidence points as one row): name, key, points, share, mean confidence."""
    total = max(frame.height, 1)
    return (frame.group_by("predicted_class_key", "predicted_name")
            .agg(pl.len().alias("points"), pl.col("confidence").mean().alias("mean_confidence"))
            .with_columns((pl.col("points") / total).alias("share"),
                          pl.col("predicted_name").fill_null("(low confidence: unclassified)"))
            .select(pl.col("predicted_name").alias("name"), pl.col("predicted_class_key").alias("class_key"),
                    "points", "share", "mean_confidence")
            .sort(["points", "class_key"], descending=[True, False], nulls_last=True))


# ---- options -----------------------------------------------------------------------------------------


def _check_options(snapshot, features, points_csv, top_k, min_confidence) -> None:
    if (snapshot is None) == (not features):
        raise TrainConfigError("give either --snapshot ID or --features FILE_OR_PREFIX..., not both or neither",
                               fix="mermaid-train predict MODEL --snapshot ID --output out.parquet, or --features DIR")
    if points_csv is not None and snapshot is not None:
        raise TrainConfigError("--points selects points of --features files; a snapshot names its own points",
                               fix="drop --points, or use --features instead of --snapshot")
    if isinstance(top_k, bool) or int(top_k) < 1:
        raise TrainConfigError(f"--top-k {top_k} must be at least 1", fix="pass --top-k 1 (the best class) or more")
    if min_confidence is not None and not 0.0 <= float(min_confidence) <= 1.0:
        raise TrainConfigError(f"--min-confidence {min_confidence} is not a probability",
                               fix="pass a value in [0, 1], e.g. 0.5 (MERMAID's threshold)")


# ---- points ------------------------------------------------------------------------------------------


def _snapshot_points(snapshot: str, lake_uri: str | None) -> tuple[_Points, TaxonomyNames]:
    from mermaid_data.lake import Lake

    from mermaid_train.features.pack import feature_uris
    from mermaid_train.split import load_snapshot_rows

    lake = Lake.open(lake_uri)
    sid, manifest, rows = load_snapshot_rows(lake, snapshot)
    table = feature_uris(lake, rows)
    lacking = table.filter(pl.col("feature_uri").is_null())
    if lacking.height:
        raise PredictInputError(f"{lacking.height:,} annotations of {sid} have no feature location (their source "
                                f"{lacking['site'][0]}/{lacking['source_id'][0]} has no root URI in the lake)",
                                where=str(lake.uri), fix="re-ingest the source with its feature location")
    table = table.select(*SNAPSHOT_ID_COLUMNS, "feature_uri")
    names = TaxonomyNames.from_lake(lake, manifest.get("recipe", {}).get("input_versions"))
    return _grouped(table, f"the annotations of snapshot {sid}"), names


def _grouped(table: pl.DataFrame, origin: str) -> _Points:
    """``table`` with each feature file's points contiguous (files in order of first appearance)."""
    files = table["feature_uri"].unique(maintain_order=True).to_list()
    code = table["feature_uri"].cast(pl.Enum(files)).to_physical().to_numpy()
    if len(code) > 1 and np.any(code[1:] < code[:-1]):
        order = np.argsort(code, kind="stable")
        table, code = table[order], code[order]
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if len(code) else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], len(code)].astype(np.int64)
    return _Points(table, files, starts, ends, origin)


def feature_files(specs: Iterable[str]) -> list[tuple[str, str]]:
    """``(URI, key relative to the prefix it was found under)`` of each feature file that ``specs`` name.

    A spec is a file (any name) or a prefix (every ``*.featurevector`` / ``*_featurevector`` below it).
    """
    from mermaid_data import storage

    found: dict[str, str] = {}
    for spec in specs:
        text = str(spec)
        if text.startswith("s3://"):
            uri = storage.Uri.parse(text)
            if uri.key and storage.exists(uri):
                found.setdefault(str(uri), uri.name)
                continue
            listed = [o.relative_key for o in storage.list_prefix(uri)]
            keys = [k for k in listed if k.endswith(FEATURE_SUFFIXES)]
            root = str(uri).rstrip("/")
        else:
            path = Path(text).expanduser()
            if path.is_file():
                found.setdefault(str(path.resolve()), path.name)
                continue
            if not path.is_dir():
                raise PredictInputError("no such feature file or folder", where=text,
                                        fix="pass feature files or folders / s3:// prefixes that hold them")
            listed = [o.relative_key for o in storage.list_prefix(storage.Uri.parse(path))]
            keys = [k for k in listed if k.endswith(FEATURE_SUFFIXES)]
            root = str(path.resolve())
        if not keys:
            raise PredictInputError(f"no feature files (*{FEATURE_SUFFIXES[0]}, *{FEATURE_SUFFIXES[1]}) below this "
                                    f"prefix ({len(listed):,} other objects)", where=text,
                                    fix="pass the folder or s3:// prefix that holds the feature files, or the files")
        for key in sorted(keys):
            found.setdefault(f"{root}/{key}", key)
    return list(found.items())


def _feature_points(specs: list[str], points_csv: str | Path | None) -> _Points:
    files = feature_files(specs)
    if points_csv is None:
        uris = [uri for uri, _ in files]
        return _Points(None, uris, np.zeros(len(uris), dtype=np.int64), np.zeros(len(uris), dtype=np.int64),
                       "the feature files")
    table = read_points_csv(Path(points_csv), files)
    return _grouped(table, str(points_csv))


def _lookup(files: list[tuple[str, str]]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Names a ``--points`` row may use for each file: ``file`` (URI, relative key, base name), ``image`` (stem)."""
    by_file: dict[str, set[str]] = {}
    by_image: dict[str, set[str]] = {}
    for uri, key in files:
        name = key.rsplit("/", 1)[-1]
        for alias in {uri, key, name}:
            by_file.setdefault(alias, set()).add(uri)
        stem = next((name[: -len(s)] for s in FEATURE_SUFFIXES if name.endswith(s)), name)
        aliases = {stem} | ({stem[1:]} if stem.startswith("i") and stem[1:].isdigit() else set())
        for alias in aliases:
            by_image.setdefault(alias, set()).add(uri)
    return by_file, by_image


def read_points_csv(path: Path, files: list[tuple[str, str]]) -> pl.DataFrame:
    """``feature_file, row, col, feature_uri`` of the points a ``--points`` CSV names.

    A bad row is an error naming the first one (its CSV row number) and how many there are: a row or col
    that is not a whole number in 0..65535, a file or image that names no feature file (or several), a
    point an earlier row already names.
    """
    where = str(path)
    fix = ("give one point per row: a file (its path, its name, or its key below the prefix) or image "
           "(the file name without .featurevector / _featurevector), and whole-number row and col")
    try:
        table = pl.read_csv(path, infer_schema=False)
    except FileNotFoundError:
        raise PredictInputError("no such --points file", where=where, fix="pass the CSV's path") from None
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, UnicodeDecodeError) as exc:
        raise PredictInputError(f"cannot read the --points CSV ({str(exc).splitlines()[0][:160]})", where=where,
                                fix=fix) from None
    columns = [c.strip().lower() for c in table.columns]
    table.columns = columns
    which = "file" if "file" in columns else "image" if "image" in columns else None
    if which is None or "row" not in columns or "col" not in columns:
        raise PredictInputError(f"the --points CSV needs columns file (or image), row, col; it has {', '.join(columns)}",
                                where=f"{where}, row 1", fix=fix)
    if table.height == 0:
        raise PredictInputError("the --points CSV has no rows", where=where, fix=fix)
    by_file, by_image = _lookup(files)
    lookup = by_file if which == "file" else by_image
    names = table[which].str.strip_chars().fill_null("")
    matches = [lookup.get(n, set()) for n in names.to_list()]
    uri = pl.Series("feature_uri", [next(iter(m)) if len(m) == 1 else None for m in matches], dtype=pl.String)
    rows = table["row"].str.strip_chars().cast(pl.Int64, strict=False)
    cols = table["col"].str.strip_chars().cast(pl.Int64, strict=False)
    duplicate, first_of = _duplicates(uri, rows, cols)
    problems = (
        (rows.is_null() | cols.is_null(), lambda i: f"row {table['row'][i]!r} / col {table['col'][i]!r} is not a "
                                                    "whole number"),
        ((rows < 0) | (cols < 0) | (rows > MAX_POSITION) | (cols > MAX_POSITION),
         lambda i: f"row {rows[i]} / col {cols[i]} is outside 0..{MAX_POSITION}"),
        (uri.is_null(), lambda i: _unmatched(which, names[i], matches[i], lookup)),
        (duplicate, lambda i: f"{which} {names[i]!r} at (row, col) = ({rows[i]}, {cols[i]}) is also row "
                              f"{int(first_of[i]) + 2}: each point once"),
    )
    bad = np.zeros(table.height, dtype=bool)
    first: tuple[int, str] | None = None
    for mask, explain in problems:
        hits = mask.fill_null(False).to_numpy()
        if hits.any():
            i = int(np.flatnonzero(hits)[0])
            if first is None or i < first[0]:
                first = (i, explain(i))
            bad |= hits
    if first is not None:
        count = int(bad.sum())
        more = f" ({count:,} bad rows of {table.height:,})" if count > 1 else ""
        raise PredictInputError(f"{first[1]}{more}", where=f"{where}, row {first[0] + 2}", fix=fix)
    return pl.DataFrame({"feature_file": uri, "row": rows, "col": cols, "feature_uri": uri,
                         "__csv_row": pl.int_range(2, table.height + 2, eager=True)})


def _duplicates(uri: pl.Series, rows: pl.Series, cols: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """Rows naming a point an earlier row names (same file, row, col), and each row's first such row index."""
    keys = pl.DataFrame({"uri": uri, "row": rows, "col": cols}).with_row_index("i")
    first = keys.join(keys.group_by("uri", "row", "col").agg(pl.col("i").min().alias("first")),
                      on=["uri", "row", "col"], how="left", nulls_equal=False).sort("i")["first"]
    first_of = first.fill_null(-1).to_numpy()
    repeated = pl.Series(first_of != np.arange(len(first_of))) & uri.is_not_null() & rows.is_not_null() & cols.is_not_null()
    return repeated, first_of


def _unmatched(which: str, name: str, matched: set[str], lookup: dict[str, set[str]]) -> str:
    import difflib

    if not name:
        return f"no {which} given"
    if len(matched) > 1:
        return f"{which} {name!r} matches {len(matched)} feature files ({', '.join(sorted(matched)[:2])}, ...)"
    near = difflib.get_close_matches(name, list(lookup), n=2, cutoff=0.5)
    return f"{which} {name!r} is not one of the feature files given" + (f" (nearest: {', '.join(near)})" if near else "")


# ---- features and classification ---------------------------------------------------------------------


def _classify(points: _Points, loaded, labels: ClassLabels, cache, *, top_k: int, min_confidence: float | None,
              progress: Progress) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Read each file's points (threads, a bounded window ahead) and classify them ``ranking.CHUNK`` at a time."""
    from mermaid_train.features.npz import locate, read_features

    label_arrays = labels.arrays()
    dim = loaded.dim

    def read(i: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        uri = points.files[i]
        path = cache.path_for(uri)
        f_rows, f_cols, feat = read_features(path, uri, dim=dim)
        if points.table is None:
            return np.ascontiguousarray(feat, dtype=np.float32), f_rows, f_cols
        a, b = int(points.starts[i]), int(points.ends[i])
        rows = points.table["row"][a:b].to_numpy()
        cols = points.table["col"][a:b].to_numpy()
        index, found = locate(f_rows, f_cols, rows, cols)
        if not found.all():
            _missing_points(points, uri, f_rows, a, rows, cols, found)
        return np.ascontiguousarray(feat[index], dtype=np.float32), None, None

    chunks: list[dict[str, np.ndarray]] = []
    positions: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # all-points mode: file index, rows, cols
    buffer: list[np.ndarray] = []
    buffered = 0

    def flush() -> None:
        nonlocal buffer, buffered
        if buffered:
            x = np.concatenate(buffer) if len(buffer) > 1 else buffer[0]
            proba = ranking.predict_proba(loaded.classifier, x)
            chunks.append(ranking.prediction_columns(proba, label_arrays, k=top_k, min_confidence=min_confidence))
            buffer, buffered = [], 0

    workers = min(4, (os.cpu_count() or 2) + 1)
    with progress.task("classify points", total=len(points.files)) as task, \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="predict") as pool:
        for i, (vectors, f_rows, f_cols) in enumerate(_ordered(pool, read, range(len(points.files)), READ_AHEAD)):
            if f_rows is not None:
                positions.append((np.full(len(f_rows), i, dtype=np.int64), f_rows.astype(np.int64),
                                  f_cols.astype(np.int64)))
            buffer.append(vectors)
            buffered += len(vectors)
            if buffered >= ranking.CHUNK:
                flush()
            task.advance()
        flush()
    columns = {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]} if chunks else {}
    if points.table is None:
        file_index = np.concatenate([p[0] for p in positions])
        ids = {"feature_file": np.asarray(points.files, dtype=object)[file_index],
               "row": np.concatenate([p[1] for p in positions]), "col": np.concatenate([p[2] for p in positions])}
    else:
        id_columns = SNAPSHOT_ID_COLUMNS if "annotation_id" in points.table.columns else FEATURE_ID_COLUMNS
        ids = {name: points.table[name].to_numpy() for name in id_columns}
    return ids, columns


def _missing_points(points: _Points, uri: str, f_rows: np.ndarray, start: int, rows, cols, found) -> None:
    bad = np.flatnonzero(~found)
    r, c = int(rows[bad[0]]), int(cols[bad[0]])
    detail = f"{len(bad)} of {len(rows)} requested points missing; the file holds {len(f_rows)} points"
    if "__csv_row" in points.table.columns:
        detail = f"row {int(points.table['__csv_row'][start + int(bad[0])])}; {detail}"
        fix = f"correct or drop the rows of {points.origin} that name points the file does not hold"
    else:
        fix = "re-extract this image's features at the annotated points and re-ingest, or leave the image out"
    raise PredictInputError(
        f"the feature file has no point at (row, col) = ({r}, {c}) that {points.origin} asks for ({detail})",
        where=uri, fix=fix)


def _ordered(pool: ThreadPoolExecutor, fn: Callable, items: Iterable, ahead: int) -> Iterator:
    """``map(fn, items)`` on ``pool`` in order, at most ``ahead`` calls in flight (a bounded read-ahead)."""
    iterator = iter(items)
    pending: deque = deque(pool.submit(fn, item) for _, item in zip(range(ahead), iterator))
    try:
        while pending:
            result = pending.popleft().result()
            for item in iterator:
                pending.append(pool.submit(fn, item))
                break
            yield result
    finally:
        for future in pending:
            future.cancel()


def _frame(ids: dict[str, np.ndarray], columns: dict[str, np.ndarray]) -> pl.DataFrame:
    data: dict[str, pl.Series] = {}
    for name, values in {**ids, **columns}.items():
        if values.dtype == object:
            data[name] = pl.Series(name, values.tolist(), dtype=pl.String)
        else:
            data[name] = pl.Series(name, values)
    return pl.DataFrame(data)


__all__ = ["FEATURE_SUFFIXES", "Prediction", "check_output", "feature_files", "predict", "read_points_csv",
           "summarize"]
