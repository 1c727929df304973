"""The seed API's runners: ``TrainingRunner`` (no MLflow) and ``MLflowTrainingRunner``.

``run()`` = check every option (and, with MLflow, the model name and the tracking server) → build or
find the snapshot → split → fetch + pack features → train with pyspacer → val metrics → write the run
folder (model, valresult, metrics, plots, reports) → with MLflow, log it all. It returns
``(return_msg, model_loc)`` as the seed documents: pyspacer's ``TrainClassifierReturnMsg`` and where the
pyspacer-compatible classifier file is. The figures stay on ``runner.result`` (``RunResult``).
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml
from mermaid_data import storage
from mermaid_data.lake import Lake
from mermaid_data.progress import Progress, SilentProgress
from mermaid_data.snapshot.build import REPORTS, snapshot_uri
from spacer.messages import TrainClassifierReturnMsg

from mermaid_train.errors import TrainConfigError
from mermaid_train.metrics import ValMetrics, compute_val_metrics
from mermaid_train.options import (
    TIMESTAMP_FORMAT,
    AnnotationsSelection,
    DatasetOptions,
    MLflowOptions,
    TrainingOptions,
    flat_params,
    get_train_settings,
    parse_annotations_to_log,
)

#: CoralNet's champion/challenger rule: a new classifier replaces the old one if at least this much better.
CORALNET_IMPROVEMENT = 1.01
MANIFEST_FILE = "manifest.json"


# ----------------------------------------------------------------------------------------------------
# per-stage time and memory
# ----------------------------------------------------------------------------------------------------


def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux: ``echo 5 > /proc/self/clear_refs``); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class Profiler:
    """Seconds and peak memory per stage (``profiled_sections.csv``)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        exact = _reset_peak()
        rss_before = _status_kb("VmRSS") or 0
        started = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - started
            peak = _status_kb("VmHWM") if exact else None
            if peak is None:  # no per-stage reset: the process's peak so far (an upper bound)
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            rss_after = _status_kb("VmRSS") or 0
            self.rows.append({
                "section": name,
                "seconds": round(seconds, 4),
                "peak_rss_mb": round(peak / 1024, 1),
                "rss_start_mb": round(rss_before / 1024, 1),
                "rss_end_mb": round(rss_after / 1024, 1),
                "peak_is_per_section": exact,
            })

    def frame(self) -> pl.DataFrame:
        schema = {"section": pl.String, "seconds": pl.Float64, "peak_rss_mb": pl.Float64, "rss_start_mb": pl.Float64,
                  "rss_end_mb": pl.Float64, "peak_is_per_section": pl.Boolean}
        return pl.DataFrame(self.rows, schema=schema)


# ----------------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What a run produced: IDs, counts, metrics and where every file is.

    ``TrainingRunner``: ``out_dir``, ``model_path`` and ``files`` are the run folder's. ``MLflowTrainingRunner``
    logs that folder and removes it: the files are then under ``artifact_uri`` (``classifier_uri`` for the
    classifier), ``model_path`` is None and ``files`` empty.
    """

    run_name: str
    snapshot_id: str
    snapshot_created: bool
    manifest: dict
    lake: str
    out_dir: Path
    model_path: Path | None
    counts: dict[str, int]
    classes: list[str]
    dropped_classes: dict[str, int]
    metrics: ValMetrics
    headline: dict[str, float]
    ref_accs: list[float]
    epoch_seconds: list[float]
    previous_accuracies: list[float]
    passes_coralnet_rule: bool | None
    runtime_s: float
    sections: pl.DataFrame
    params: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    packed_reused: bool = False
    example_x: np.ndarray | None = None  # a few val feature vectors (the logged model's signature)
    rows_schema: dict[str, str] = field(default_factory=dict)  # the snapshot rows' columns and types
    # filled by MLflowTrainingRunner
    tracking_uri: str | None = None
    experiment_id: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    model_uri: str | None = None
    registered_model: str | None = None
    registered_version: str | None = None
    classifier_uri: str | None = None
    artifact_uri: str | None = None

    def return_msg(self) -> TrainClassifierReturnMsg:
        return TrainClassifierReturnMsg(acc=float(self.headline["accuracy"]), pc_accs=list(self.previous_accuracies),
                                        ref_accs=list(self.ref_accs), runtime=float(self.runtime_s))


# ----------------------------------------------------------------------------------------------------
# TrainingRunner
# ----------------------------------------------------------------------------------------------------


class TrainingRunner:
    """Train from a snapshot (built from ``dataset_options`` or given by ``snapshot_id``); no MLflow.

    Writes the run folder ``<runs_dir>/<run name>/`` (default ``./runs``, setting ``MERMAID_RUNS_DIR``):
    ``classifier.pkl`` (pyspacer's format, ``spacer.storage.load_classifier`` loads it), ``valresult.json``,
    ``metrics/`` (CSVs, PNGs, metrics.json), ``snapshot/`` (the snapshot's reports), ``train_summary.yaml``,
    ``annotations_val.csv``, ``split.parquet`` and ``profiled_sections.csv``.
    """

    def __init__(
        self,
        dataset_options: DatasetOptions | None = None,
        training_options: TrainingOptions | None = None,
        *,
        snapshot_id: str | None = None,
        lake: str | None = None,
        run_name: str | None = None,
        runs_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.dataset_options = dataset_options or DatasetOptions()
        self.training_options = training_options or TrainingOptions()
        self.snapshot_id = snapshot_id
        self.lake_uri = lake
        self.run_name = run_name
        settings = get_train_settings()
        self.runs_dir = Path(runs_dir or settings.runs_dir).expanduser().absolute()
        self.cache_dir = Path(cache_dir or settings.cache_dir).expanduser().absolute()
        self.progress = progress or SilentProgress()
        self.result: RunResult | None = None
        self.metrics: dict[str, float] = {}
        self._selection: AnnotationsSelection | None = None

    # -- hooks -----------------------------------------------------------------------------------------

    def preflight(self) -> None:
        """Check every option before any heavy work (the MLflow runner adds the model name and server)."""
        self.dataset_options.validate()
        self.training_options.validate()

    def annotations_to_log(self) -> str | None:
        return None

    def params(self) -> dict[str, Any]:
        """Every option, with defaults resolved (the lake and tolerance in effect, not ``None``)."""
        params = flat_params(self.dataset_options, self.training_options)
        params["dataset.lake"] = str(self.lake.uri)
        params["dataset.missing_features_allowed"] = self.dataset_options.missing_allowed_pct()
        return params

    # -- the run ---------------------------------------------------------------------------------------

    @property
    def lake(self) -> Lake:
        return Lake.open(self.lake_uri or self.dataset_options.lake_uri())

    def run(self) -> tuple[TrainClassifierReturnMsg, str]:
        """Train and write the run folder; return ``(return_msg, model_loc)``."""
        self.preflight()
        self._selection = parse_annotations_to_log(self.annotations_to_log())
        out_dir = self._out_dir()
        result = self._train(out_dir)
        self.result = result
        self.metrics = dict(result.headline)
        return result.return_msg(), str(result.model_path)

    def _out_dir(self) -> Path:
        name = self.run_name or f"run-{datetime.now().strftime(TIMESTAMP_FORMAT)}"
        out = self.runs_dir / name
        n = 2
        while out.exists():
            out = self.runs_dir / f"{name}-{n}"
            n += 1
        self.run_name = out.name
        return out

    def _train(self, out_dir: Path) -> RunResult:
        from mermaid_train.features import FeatureCache, pack
        from mermaid_train.split import load_snapshot_rows, split_snapshot
        from mermaid_train.trainer import train

        data, opts = self.dataset_options, self.training_options
        lake = self.lake
        prof = Profiler()
        started = time.perf_counter()
        work = out_dir.with_name(f".{out_dir.name}.partial")
        if work.exists():
            shutil.rmtree(work)
        try:
            with prof.section("snapshot"):
                created = False
                if self.snapshot_id:
                    sid = self.snapshot_id
                else:
                    snap = lake.create_snapshot(
                        data.snapshot_spec(name=self.run_name or "", message="built by mermaid_train"),
                        progress=self.progress)
                    sid, created = snap.snapshot_id, snap.created
                sid, manifest, rows = load_snapshot_rows(lake, sid)
                rows_schema = {name: str(dtype) for name, dtype in rows.schema.items()}
            self.snapshot_id = sid
            with prof.section("split"):
                split = split_snapshot(rows, ref_val_ratios=data.ref_val_ratios, seed=opts.seed, mode=opts.split)
                del rows
            selected = _select_annotations(split.rows, self._selection, sid)
            with prof.section("features"):
                ref, val = data.ref_val_ratios
                key = f"{opts.split}-seed{opts.seed}-ref{ref:g}-val{val:g}"
                packed = pack(split, snapshot_id=sid, split_key=key, cache=FeatureCache(self.cache_dir / "features"),
                              lake=lake, work_dir=self.cache_dir, missing_allowed_pct=data.missing_allowed_pct(),
                              progress=self.progress)
            work.mkdir(parents=True)
            with prof.section("train"):
                outcome = train(packed, epochs=opts.epochs, clf_type=opts.clf_type, trainer=opts.trainer,
                                seed=opts.seed, batch_size=opts.batch_size,
                                previous_model_locs=opts.previous_model_locs, out_dir=work, progress=self.progress)
            with prof.section("metrics"):
                metrics, val_table = _metrics(outcome, packed)
                metric_files = metrics.write(work / "metrics")
            with prof.section("reports"):
                files = dict(metric_files)
                files.update(_copy_snapshot_reports(lake, sid, work / "snapshot"))
                val_path = work / "annotations_val.csv"
                val_table.write_csv(val_path)
                files["annotations_val.csv"] = val_path
                if selected is not None:
                    sel_path = work / self._selection.file_name
                    selected.write_csv(sel_path)
                    files[self._selection.file_name] = sel_path
                split_path = work / "split.parquet"
                split.rows.select([c for c in ("annotation_id", "site", "source_id", "image_id", "row", "col",
                                               "class_key", "split") if c in split.rows.columns]).write_parquet(split_path)
                files["split.parquet"] = split_path

            runtime = time.perf_counter() - started
            previous = list(outcome.previous_accuracies)
            passes = (all(outcome.accuracy >= CORALNET_IMPROVEMENT * p for p in previous) if previous else None)
            counts = {name: int((packed.split == code).sum()) for code, name in enumerate(("train", "ref", "val"))}
            headline = dict(metrics.headline)
            headline["train_runtime_s"] = float(outcome.runtime_s)
            headline["run_runtime_s"] = float(runtime)
            for i, acc in enumerate(previous):
                headline[f"previous_model_{i}_accuracy"] = float(acc)
            params = self.params()
            result = RunResult(
                run_name=self.run_name or out_dir.name, snapshot_id=sid, snapshot_created=created, manifest=manifest,
                lake=str(lake.uri), out_dir=out_dir, model_path=out_dir / outcome.model_path.name, counts=counts,
                classes=list(outcome.classes), dropped_classes=dict(split.dropped_classes), metrics=metrics,
                headline=headline, ref_accs=list(outcome.ref_accs), epoch_seconds=list(outcome.epoch_seconds),
                previous_accuracies=previous, passes_coralnet_rule=passes, runtime_s=runtime, sections=prof.frame(),
                params=params, packed_reused=bool(getattr(packed, "reused", False)),
                example_x=np.array(packed.x[packed.indices("val")[:5]], dtype=np.float32), rows_schema=rows_schema,
            )
            sections_path = work / "profiled_sections.csv"
            result.sections.write_csv(sections_path)
            files["profiled_sections.csv"] = sections_path
            files["valresult.json"] = work / outcome.valresult_path.name
            files["classifier.pkl"] = work / outcome.model_path.name
            summary_path = work / "train_summary.yaml"
            summary_path.write_text(yaml.safe_dump(_summary(result, outcome, packed), sort_keys=False))
            files["train_summary.yaml"] = summary_path
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            os.replace(work, out_dir)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)  # nothing half-written
            raise
        result.files = {name: out_dir / path.relative_to(work) for name, path in files.items()}
        result.metrics.files = {n: out_dir / p.relative_to(work) for n, p in result.metrics.files.items()}
        return result


# ----------------------------------------------------------------------------------------------------
# MLflowTrainingRunner
# ----------------------------------------------------------------------------------------------------


class MLflowTrainingRunner(TrainingRunner):
    """``TrainingRunner`` that logs everything to MLflow (see docs/training.md, "What is logged where").

    The tracking server is ``mlflow_options.tracking_uri``, else ``MLFLOW_TRACKING_URI``, else a SQLite
    store ``./mlflow.db``. The model name and the server are checked before any heavy work.
    """

    def __init__(
        self,
        dataset_options: DatasetOptions | None = None,
        training_options: TrainingOptions | None = None,
        mlflow_options: MLflowOptions | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset_options, training_options, **kwargs)
        self.mlflow_options = mlflow_options or MLflowOptions()
        self.model_name: str | None = None
        self.tracking_uri: str | None = None

    def annotations_to_log(self) -> str | None:
        return self.mlflow_options.annotations_to_log

    def params(self) -> dict[str, Any]:
        params = {**super().params(), **{k: v for k, v in flat_params(
            self.dataset_options, self.training_options, self.mlflow_options).items() if k.startswith("mlflow.")}}
        params["mlflow.experiment_name"] = self.mlflow_options.resolved_experiment()
        params["mlflow.model_name"] = self.mlflow_options.resolved_model_name()
        params.pop("mlflow.tracking_uri", None)  # may hold credentials; the run's location says where it is
        return params

    def preflight(self) -> None:
        from mermaid_train.mlflow_log import check_tracking, resolve_tracking_uri
        from mermaid_train.options import timestamped, validate_model_name

        super().preflight()
        self.mlflow_options.validate()
        self.model_name = timestamped(validate_model_name(self.mlflow_options.resolved_model_name()))
        if self.run_name is None:
            self.run_name = self.model_name
        self.tracking_uri = resolve_tracking_uri(self.mlflow_options.tracking_uri)
        check_tracking(self.tracking_uri, self.mlflow_options.resolved_experiment())

    def run(self) -> tuple[TrainClassifierReturnMsg, str]:
        from mermaid_train.mlflow_log import log_run

        self.preflight()
        self._selection = parse_annotations_to_log(self.annotations_to_log())
        scratch = Path(tempfile.mkdtemp(prefix="mermaid-train-"))
        try:
            result = self._train(scratch / (self.run_name or "run"))
            log_run(result, tracking_uri=self.tracking_uri, experiment=self.mlflow_options.resolved_experiment(),
                    model_name=self.model_name, register=self.mlflow_options.register_model,
                    progress=self.progress)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        result.model_path, result.files, result.metrics.files = None, {}, {}  # they live in MLflow now
        self.result = result
        self.metrics = dict(result.headline)
        return result.return_msg(), result.classifier_uri or result.model_uri or ""


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------


def _select_annotations(rows: pl.DataFrame, selection: AnnotationsSelection | None, sid: str) -> pl.DataFrame | None:
    """The ``annotations_to_log`` rows (checked before features are fetched: an unknown id fails early)."""
    if selection is None:
        return None
    columns = [c for c in ("annotation_id", "site", "source_id", "image_id", "row", "col", "benthic_attribute_id",
                           "growth_form_id", "class_key", "split") if c in rows.columns]
    if selection.kind == "all":
        return rows.select(columns)
    if selection.kind == "source":
        chosen = rows.filter((pl.col("site") == "coralnet") & (pl.col("source_id") == selection.value))
    else:
        chosen = rows.filter(pl.col("image_id").cast(pl.String) == selection.value)
    if chosen.height == 0:
        what = f"CoralNet source s{selection.value}" if selection.kind == "source" else f"image {selection.value}"
        raise TrainConfigError(
            f"annotations_to_log: snapshot {sid} has no annotations of {what}",
            fix="pick a source or image the snapshot holds (`mermaid-data sql \"SELECT DISTINCT source_id, image_id "
            f"FROM snapshot('{sid}')\"`), 'all', or None",
        )
    return chosen.select(columns)


def _class_names(rows: pl.DataFrame, classes: list[str]) -> list[str]:
    """``"Benthic attribute / Growth form"`` per class key, from the rows' name columns when present."""
    if "benthic_attribute_name" not in rows.columns:
        return list(classes)
    gf = pl.col("growth_form_name") if "growth_form_name" in rows.columns else pl.lit(None, pl.String)
    named = rows.select("class_key", pl.col("benthic_attribute_name").alias("ba"), gf.alias("gf")).unique("class_key")
    names = {k: (ba or k) + (f" / {g}" if g else "") for k, ba, g in named.iter_rows()}
    return [names.get(c, c) for c in classes]


def _metrics(outcome, packed) -> tuple[ValMetrics, pl.DataFrame]:
    """Val metrics and the per-annotation val table (truth, prediction, confidence)."""
    classes = list(outcome.classes)
    gt = np.asarray(outcome.val_gt, dtype=np.int64)
    est = np.asarray(outcome.val_est, dtype=np.int64)
    scores = np.asarray(outcome.val_scores, dtype=np.float64)
    rows = outcome.val_rows if outcome.val_rows is not None and outcome.val_rows.height == len(gt) else None
    if rows is not None and "class_key" in rows.columns and not bool(
            (rows["class_key"].to_numpy().astype(str) == np.asarray(classes, dtype=str)[gt]).all()):
        rows = None  # not aligned with the val results: no per-image / per-source figures rather than wrong ones
    names = _class_names(packed.rows, classes)
    images = sources = None
    if rows is not None:
        images = (rows["site"] + "/" + rows["source_id"].cast(pl.String) + "/" + rows["image_id"].cast(pl.String)).to_numpy()
        sources = (rows["site"] + "/" + rows["source_id"].cast(pl.String)).to_numpy()
    metrics = compute_val_metrics(gt, est, classes, scores=scores, image_ids=images, source_keys=sources,
                                  class_names=names, ref_accs=outcome.ref_accs, epoch_seconds=outcome.epoch_seconds)
    confidence = scores.max(axis=1) if scores.ndim == 2 else scores
    keys = np.asarray(classes, dtype=object)
    name_arr = np.asarray(names, dtype=object)
    table = pl.DataFrame({
        "true_class": keys[gt].astype(str), "true_name": name_arr[gt].astype(str),
        "predicted_class": keys[est].astype(str), "predicted_name": name_arr[est].astype(str),
        "confidence": confidence, "correct": gt == est,
    })
    if rows is not None:
        keep = [c for c in ("annotation_id", "site", "source_id", "image_id", "row", "col") if c in rows.columns]
        table = pl.concat([rows.select(keep), table], how="horizontal")
    return metrics, table


def _copy_snapshot_reports(lake: Lake, sid: str, dest: Path) -> dict[str, Path]:
    """The snapshot's CSV reports and manifest, copied into the run folder."""
    dest.mkdir(parents=True, exist_ok=True)
    src = snapshot_uri(lake, sid)
    out = {}
    for name in (*REPORTS, MANIFEST_FILE):
        try:
            data = storage.read_bytes(src.join(name))
        except FileNotFoundError:
            continue
        (dest / name).write_bytes(data)
        out[f"snapshot/{name}"] = dest / name
    return out


def _summary(result: RunResult, outcome, packed) -> dict[str, Any]:
    """train_summary.yaml: what was trained on, how, and how well."""
    manifest = result.manifest
    return {
        "run_name": result.run_name,
        "snapshot": {
            "id": result.snapshot_id,
            "created_by_this_run": result.snapshot_created,
            "lake": result.lake,
            "rows": int(manifest.get("row_count", 0)),
            "content_sha256": manifest.get("content_sha256"),
            "name": manifest.get("name"),
            "created_at": manifest.get("created_at"),
        },
        "options": {k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in result.params.items()},
        "split": {
            "annotations": result.counts,
            "classes": len(result.classes),
            "dropped_classes": len(result.dropped_classes),
            "dropped_annotations": int(sum(result.dropped_classes.values())),
            "dropped_for_missing_features": int(packed.info.get("dropped_missing_features", 0)),
        },
        "features": {
            "packed_dir": str(packed.directory),
            "reused": result.packed_reused,
            "dim": int(packed.x.shape[1]),
            "fetch": packed.info.get("fetch"),
        },
        "training": {
            "trainer": outcome.trainer,
            "details": _plain(outcome.details),
            "epochs": len(result.ref_accs),
            "ref_accuracy_per_epoch": [round(a, 6) for a in result.ref_accs],
            "epoch_seconds": [round(s, 4) for s in result.epoch_seconds],
            "runtime_s": round(float(outcome.runtime_s), 3),
            "previous_model_accuracies": result.previous_accuracies,
            "passes_coralnet_rule": result.passes_coralnet_rule,
        },
        "metrics": {k: round(float(v), 6) for k, v in sorted(result.metrics.headline.items())},
        "sections": result.sections.to_dicts(),
        "classes": result.classes,
    }


def _plain(value: Any) -> Any:
    """YAML-safe copy (tuples -> lists, numpy scalars -> Python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


__all__ = ["MLflowTrainingRunner", "Profiler", "RunResult", "TrainingRunner"]
