"""The run folder: every file a run writes besides the model (tables, reports, ``train_summary.yaml``).

Layout (docs/training.md, "What is logged where"): ``classifier.pkl`` and ``valresult.json`` (written by
pyspacer), ``metrics/`` (``ValMetrics.write``), ``snapshot/`` (the snapshot's reports),
``annotations_val.csv``, ``classes.csv`` (the model's classes with names), the ``annotations_to_log``
selection, ``split.parquet``, ``subsample_counts.csv``, ``class_weights.csv``, ``logit_adjustment.csv``,
``profiled_sections.csv``, ``train_summary.yaml``, ``report.html`` (``mermaid_train.report``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml
from mermaid_data import storage
from mermaid_data.lake import Lake
from mermaid_data.snapshot.build import REPORTS, snapshot_uri

from mermaid_train.errors import TrainConfigError
from mermaid_train.features.pack import PackedData
from mermaid_train.labels import ClassLabels
from mermaid_train.metrics import ValMetrics
from mermaid_train.options import AnnotationsSelection
from mermaid_train.results import RunResult, TrainOutcome
from mermaid_train.split import SplitResult, SubsampleResult

MANIFEST_FILE = "manifest.json"
ROW_ID_COLUMNS = ("annotation_id", "site", "source_id", "image_id", "row", "col")


def select_annotations(rows: pl.DataFrame, selection: AnnotationsSelection | None, sid: str) -> pl.DataFrame | None:
    """The ``annotations_to_log`` rows (checked before features are fetched: an unknown id fails early)."""
    if selection is None:
        return None
    columns = [c for c in (*ROW_ID_COLUMNS, "benthic_attribute_id", "growth_form_id", "class_key", "split")
               if c in rows.columns]
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


def class_labels(rows: pl.DataFrame, classes: list[str]) -> ClassLabels:
    """Each class key's BA / GF ids and names, from the rows' name columns when present."""
    names = [c for c in ("benthic_attribute_name", "growth_form_name") if c in rows.columns]
    if not names:
        return ClassLabels.from_frame(pl.DataFrame({"class_key": classes}, schema={"class_key": pl.String}), classes)
    return ClassLabels.from_frame(rows.select("class_key", *names).unique("class_key"), classes)


def class_names(rows: pl.DataFrame, classes: list[str]) -> list[str]:
    """``"Benthic attribute / Growth form"`` per class key, from the rows' name columns when present."""
    return class_labels(rows, classes).names


def val_points(outcome: TrainOutcome) -> tuple[np.ndarray | None, np.ndarray | None, pl.DataFrame | None]:
    """``(image keys, source keys, rows)`` of the val points, or Nones if the rows do not line up with them."""
    rows = outcome.val_rows
    if rows is None or rows.height != len(outcome.val_gt) or "class_key" not in rows.columns:
        return None, None, None
    if not bool((rows["class_key"].to_numpy().astype(str) == np.asarray(outcome.classes, dtype=str)[outcome.val_gt]).all()):
        return None, None, None  # not aligned: no per-image / per-source figures rather than wrong ones
    images = (rows["site"] + "/" + rows["source_id"].cast(pl.String) + "/" + rows["image_id"].cast(pl.String)).to_numpy()
    sources = (rows["site"] + "/" + rows["source_id"].cast(pl.String)).to_numpy()
    return images, sources, rows


def val_table(outcome: TrainOutcome, names: list[str], rows: pl.DataFrame | None) -> pl.DataFrame:
    """Every val annotation: ids, truth, prediction (keys and names), confidence, correct."""
    scores = np.asarray(outcome.val_scores, dtype=np.float64)
    confidence = scores.max(axis=1) if scores.ndim == 2 else scores
    keys = np.asarray(outcome.classes, dtype=object)
    name_arr = np.asarray(names, dtype=object)
    gt, est = outcome.val_gt, outcome.val_est
    table = pl.DataFrame({
        "true_class": keys[gt].astype(str), "true_name": name_arr[gt].astype(str),
        "predicted_class": keys[est].astype(str), "predicted_name": name_arr[est].astype(str),
        "confidence": confidence, "correct": gt == est,
    })
    if rows is not None:
        table = pl.concat([rows.select([c for c in ROW_ID_COLUMNS if c in rows.columns]), table], how="horizontal")
    return table


def copy_snapshot_reports(lake: Lake, sid: str, dest: Path) -> dict[str, Path]:
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


def write_tables(work: Path, *, metrics: ValMetrics, outcome: TrainOutcome, names: list[str], rows, split: SplitResult,
                 selected: pl.DataFrame | None, selection: AnnotationsSelection | None,
                 subsample: SubsampleResult | None) -> dict[str, Path]:
    """The run's tables; returns name -> path."""
    files = dict(metrics.write(work / "metrics"))
    files = {f"metrics/{k}": v for k, v in files.items()}

    def put(name: str, frame: pl.DataFrame, parquet: bool = False) -> None:
        path = work / name
        frame.write_parquet(path) if parquet else frame.write_csv(path)
        files[name] = path

    put("annotations_val.csv", val_table(outcome, names, rows))
    put("classes.csv", class_labels(split.rows, list(outcome.classes)).frame())
    if selected is not None and selection is not None:
        put(selection.file_name, selected)
    put("split.parquet", split.rows.select([c for c in (*ROW_ID_COLUMNS, "class_key", "split")
                                           if c in split.rows.columns]), parquet=True)
    if subsample is not None:
        put("subsample_counts.csv", subsample.counts)
    report = outcome.report
    if report is not None and report.class_weights is not None:
        put("class_weights.csv", pl.DataFrame({"class_key": report.classes,
                                                "weight": report.class_weights.astype(np.float64)}))
    if report is not None and report.logit_adjustment is not None:
        put("logit_adjustment.csv", report.logit_adjustment.candidates)
    return files


def summary(result: RunResult, outcome: TrainOutcome, packed: PackedData) -> dict[str, Any]:
    """train_summary.yaml: what was trained on, how, and how well."""
    manifest = result.manifest
    report = outcome.report
    training: dict[str, Any] = {
        "trainer": outcome.trainer,
        "recipe_id": result.recipe_id,
        "preset": result.recipe.preset,
        "details": plain(outcome.details),
        "epochs_run": len(result.epochs),
        "best_epoch": result.best_epoch,
        "ref_accuracy_per_epoch": [round(a, 6) for a in result.ref_accs],
        "epoch_seconds": [round(s, 4) for s in result.epoch_seconds],
        "per_epoch": [plain(e.__dict__) for e in result.epochs],
        "runtime_s": round(float(outcome.runtime_s), 3),
        "previous_model_accuracies": result.previous_accuracies,
        "passes_coralnet_rule": result.passes_coralnet_rule,
    }
    if report is not None:
        training.update({
            "hidden_layer_sizes": list(report.hidden_layer_sizes), "learning_rate": report.learning_rate,
            "stopped_early": report.stopped_early, "blas_threads": report.blas_threads,
            "gflops": None if math.isnan(outcome.gflops) else round(outcome.gflops, 2),
            "logit_adjustment_tau": report.tau, "ref_accuracy": round(report.ref_accuracy, 6),
            "ref_balanced_accuracy": round(report.ref_balanced_accuracy, 6),
            "calibration_seconds": round(report.calibration_seconds, 3),
        })
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
            "subsample": None if result.subsample is None else {
                "kept": len(result.subsample.kept),
                "dropped_classes": len(result.subsample.dropped_classes)},
        },
        "features": {
            "packed_dir": str(packed.directory),
            "dtype": packed.dtype,
            "reused": result.packed_reused,
            "dim": int(packed.x.shape[1]),
            "fetch": packed.info.get("fetch"),
        },
        "training": training,
        "metrics": {k: round(float(v), 6) for k, v in sorted(result.metrics.headline.items()) if not math.isnan(v)},
        "sections": result.sections.to_dicts(),
        "classes": result.classes,
    }


def write_report(work: Path, result: RunResult) -> Path:
    """``report.html``: the run's metrics, plots (from ``metrics/``), tables with names, recipe and snapshot links."""
    from mermaid_train.report import ReportInfo
    from mermaid_train.report import write_report as write_page

    counts = " / ".join(f"{result.counts.get(k, 0):,}" for k in ("train", "ref", "val"))
    facts = (("annotations train / ref / val", counts),
             ("classes (dropped as too rare)", f"{len(result.classes)} ({len(result.dropped_classes)})"),
             ("recipe ID", result.recipe_id), ("preset", result.recipe.preset),
             ("snapshot rows", f"{int(result.manifest.get('row_count', 0)):,}"),
             ("snapshot content SHA-256", str(result.manifest.get("content_sha256", ""))))
    info = ReportInfo(title=f"{result.run_name}: training report", kind="training", run_name=result.run_name,
                      snapshot_id=result.snapshot_id, lake=result.lake, facts=facts,
                      recipe={k: "" if v is None else str(v) for k, v in result.params.items()})
    return write_page(work / "report.html", result.metrics, info, plots_dir=work / "metrics")


def write_summary(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def plain(value: Any) -> Any:
    """YAML-safe copy (tuples -> lists, numpy scalars -> Python, NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)
