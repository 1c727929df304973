"""``evaluate``: score any model on any published snapshot, into an evaluation folder and an MLflow run.

In order: check the options (rows, the output folder, the tracking server when one is needed) → the
snapshot (an unknown ID lists the nearest) → the model (``model.load``; an unknown reference lists
the nearest names) → the rows (``rows='val'``: the model's own val set, only on its training snapshot) → that
the snapshot's classes overlap the model's → features through the training cache (``features.pack``,
packed once per snapshot and reused by every model evaluated on it) → probabilities → metrics
(``evaluation.score``) → the folder ``<out_dir>/<name>/`` (written under a scratch name and renamed) →
with MLflow an evaluation run (``tracking.evaluation``). Bad input fails before anything is written.

The folder: ``metrics/`` (the same tables as a training run's: ``metrics.json``, ``per_label.csv`` with an
``in_model`` column, ``confusion_matrix.csv``/``.png``, ``per_source.csv``, ``per_image_cover.csv``,
``calibration.csv``, ``reliability.png``, ``root_confusion.csv``), ``annotations_eval.csv`` (every scored
row: ids, truth, prediction, names, confidence, correct, known_class), ``unknown_classes.csv``,
``evaluation.yaml`` (the model, the snapshot, the counts, the headline), ``report.html`` (one self-contained
page: ``mermaid_train.report``) and ``snapshot/`` (its manifest and reports).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
import warnings
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import yaml
from mermaid_data.lake import Lake
from mermaid_data.progress import Progress, SilentProgress
from mermaid_data.settings import get_settings as get_data_settings

from mermaid_train import runfolder
from mermaid_train.errors import ModelError, TrainConfigError, TrainDataError
from mermaid_train.lineage import snapshot_digest
from mermaid_train.model.load import LoadedModel, ModelRef, load_model
from mermaid_train.options import TIMESTAMP_FORMAT, get_train_settings
from mermaid_train.results import EvaluationResult, EvaluationScores

ROWS = ("all", "val")
DEFAULT_OUT_DIR = "./evaluations"
#: Bump when the meaning of an evaluation's figures changes: ``compare --on`` reuses only the same format.
EVALUATION_FORMAT = 1
SPLIT_FILE = "split.parquet"  # a training run's rows and their sets
EPOCH_FILES = ("epochs.csv", "epochs.png")  # a training run's per-epoch record: an evaluation has none


def evaluate(
    model: str | LoadedModel,
    snapshot: str,
    *,
    lake: str | None = None,
    rows: str = "all",
    tracking_uri: str | None = None,
    experiment: str | None = None,
    mlflow: bool = True,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    fetch_workers: int | None = None,
    missing_features_allowed: float | None = None,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Score ``model`` (a reference, or one ``load_model`` loaded) on ``snapshot`` (module docstring).

    ``rows``: ``'all'`` (default) or ``'val'``. ``mlflow=False``: only the folder, no evaluation run.
    """
    from mermaid_train.features import FeatureCache, pack
    from mermaid_train.metrics import Taxonomy
    from mermaid_train.model.export import predict_proba
    from mermaid_train.split import SplitResult, load_snapshot_rows
    from mermaid_train.tracking.mlflow import check_tracking, resolve_tracking_uri

    started = time.perf_counter()
    progress = progress or SilentProgress()
    settings = get_train_settings()
    if rows not in ROWS:
        raise TrainConfigError(f"rows {rows!r} is not one of {', '.join(ROWS)}",
                               fix="pass --rows all (every row of the snapshot) or --rows val (the model's own val set)")
    out_root = _out_root(out_dir)
    lake_obj = Lake.open(lake)  # default: MERMAID_LAKE_URI
    uri = None
    reference = model.ref.uri if isinstance(model, LoadedModel) else str(model)
    if mlflow or reference.startswith(("models:/", "runs:/")):
        uri = resolve_tracking_uri(tracking_uri)
        check_tracking(uri, experiment or settings.experiment_name)

    sid, manifest, snapshot_rows = load_snapshot_rows(lake_obj, snapshot)
    if isinstance(model, LoadedModel):
        loaded = model
    else:
        with progress.task(f"load model {reference}"):
            loaded = load_model(reference, tracking_uri=uri)
    frame = snapshot_rows.with_columns(
        (pl.col("benthic_attribute_id") + "::" + pl.col("growth_form_id").fill_null("")).alias("class_key"))
    if rows == "val":
        frame = _model_val_rows(frame, loaded.ref, sid, uri)
    snapshot_classes = sorted(frame["class_key"].unique().to_list())
    _check_overlap(loaded, snapshot_classes, sid)

    data = get_data_settings()
    missing_pct = float(missing_features_allowed if missing_features_allowed is not None
                        else data.missing_features_allowed)
    work_dir = Path(cache_dir or settings.cache_dir).expanduser().absolute()
    split = SplitResult(frame.with_columns(pl.lit("val").alias("split")), snapshot_classes, {})
    packed = pack(split, snapshot_id=sid, split_key=_split_key(rows, loaded.ref),
                  cache=FeatureCache(work_dir / "features", workers=int(fetch_workers or settings.fetch_workers)),
                  lake=lake_obj, work_dir=work_dir, missing_allowed_pct=missing_pct, progress=progress)
    with progress.task(f"score {len(packed):,} points"):
        from mermaid_train.evaluation.score import score

        proba = predict_proba(loaded.classifier, packed.x, np.arange(len(packed)))
        scored_rows = packed.rows
        keys = sorted(set(snapshot_classes) | set(loaded.classes))
        versions = (manifest.get("recipe") or {}).get("input_versions")
        names = class_names(lake_obj, scored_rows, keys, versions)
        images = (scored_rows["site"] + "/" + scored_rows["source_id"].cast(pl.String) + "/"
                  + scored_rows["image_id"].cast(pl.String)).to_numpy()
        sources = (scored_rows["site"] + "/" + scored_rows["source_id"].cast(pl.String)).to_numpy()
        taxonomy = Taxonomy.from_lake(lake_obj, versions)
        scores = score(proba, loaded.classes, scored_rows["class_key"], names=names, image_ids=images,
                       source_keys=sources, taxonomy=taxonomy)

    counts = {"snapshot_rows": int(snapshot_rows.height), "selected_rows": int(frame.height),
              "missing_features": int(packed.info.get("dropped_missing_features", 0)), "scored": len(packed),
              "known_class": int(scores.headline["known_class_points"]),
              "unknown_class": int(scores.headline["unknown_class_points"])}
    name = f"eval-{_slug(loaded.ref)}-{sid}-{datetime.now().strftime(TIMESTAMP_FORMAT)}"
    result = EvaluationResult(
        name=name, model=loaded.ref, snapshot_id=sid, manifest=manifest, lake=str(lake_obj.uri), rows=rows,
        scores=scores, counts=counts, out_dir=_unique(out_root / name),
        rows_schema={column: str(dtype) for column, dtype in snapshot_rows.schema.items()})
    result = _write(result, lake_obj, scored_rows, time.perf_counter() - started)
    if mlflow:
        from mermaid_train.tracking.evaluation import log_evaluation

        logged = log_evaluation(result, tracking_uri=uri, experiment=experiment, progress=progress)
        result = replace(result, **logged)
    return result


def _out_root(out_dir: str | Path | None) -> Path:
    root = Path(out_dir or DEFAULT_OUT_DIR).expanduser().absolute()
    existing = root
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise TrainConfigError("the evaluations folder is not a writable folder", where=str(existing),
                               fix="pass --out-dir a folder you can write to (default ./evaluations)")
    return root


def _unique(path: Path) -> Path:
    out, n = path, 2
    while out.exists():
        out = path.with_name(f"{path.name}-{n}")
        n += 1
    return out


def _slug(ref: ModelRef) -> str:
    if ref.registered_name:
        text = f"{ref.registered_name}-v{ref.registered_version}"
    elif ref.run_id:
        text = f"run-{ref.run_id[:12]}"
    else:
        text = Path(ref.uri).stem if ref.run_folder is None else ref.run_folder.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "model"


def _split_key(rows: str, ref: ModelRef) -> str:
    """The pack of every row is shared by every model evaluated on the snapshot; a val subset is per run."""
    if rows == "all":
        return "eval-all"
    owner = ref.run_id or (ref.run_folder.name if ref.run_folder else "model")
    return "eval-val-" + re.sub(r"[^A-Za-z0-9._-]+", "-", owner)[:60]


def _model_val_rows(frame: pl.DataFrame, ref: ModelRef, sid: str, tracking_uri: str | None) -> pl.DataFrame:
    """The rows of the model's own val set; only defined on the snapshot the model was trained on."""
    if ref.training_snapshot_id is None:
        raise TrainConfigError("--rows val: the model's training snapshot is unknown (no training run or run "
                               "folder)", where=ref.uri,
                               fix="pass a models:/ or runs:/ URI, or the classifier.pkl in its run folder; or --rows all")
    if ref.training_snapshot_id != sid:
        raise TrainConfigError(
            f"--rows val: the model's val set is a part of its training snapshot {ref.training_snapshot_id}, "
            f"not of {sid}", where=ref.uri,
            fix=f"pass --snapshot {ref.training_snapshot_id} --rows val (the model's own val set), or --rows all "
                f"(every row of {sid})")
    ids = val_annotation_ids(ref, tracking_uri)
    return frame.filter(pl.col("annotation_id").is_in(ids.implode()))


def val_annotation_ids(ref: ModelRef, tracking_uri: str | None) -> pl.Series:
    """``annotation_id`` of every point in the model's own val set (its training run's ``split.parquet``)."""
    import tempfile

    if ref.run_folder is not None:
        split = pl.read_parquet(ref.run_folder / SPLIT_FILE)
    elif ref.run_id is not None and tracking_uri:
        from mlflow import MlflowClient

        from mermaid_train.tracking.mlflow import bounded

        client = MlflowClient(tracking_uri=tracking_uri)
        with bounded(), tempfile.TemporaryDirectory(prefix="mermaid-eval-") as tmp:
            if SPLIT_FILE not in {a.path for a in client.list_artifacts(ref.run_id)}:
                raise ModelError(f"the model's training run {ref.run_id} has no {SPLIT_FILE}, so its val set is "
                                 "unknown", where=ref.uri, fix="use --rows all")
            split = pl.read_parquet(client.download_artifacts(ref.run_id, SPLIT_FILE, tmp))
    else:
        raise TrainConfigError("--rows val: the model's training run is unknown (a classifier file outside a run "
                               "folder), so its val set is too", where=ref.uri,
                               fix="pass a models:/ or runs:/ URI, or the classifier.pkl in its run folder, "
                                   "or use --rows all")
    return split.filter(pl.col("split") == "val")["annotation_id"]


def _check_overlap(loaded: LoadedModel, snapshot_classes: list[str], sid: str) -> None:
    shared = set(snapshot_classes) & set(loaded.classes)
    if not shared:
        example = ", ".join(loaded.classes[:2]) or "none"
        raise TrainDataError(
            f"none of the snapshot {sid}'s {len(snapshot_classes)} classes is among the model's "
            f"{len(loaded.classes)} classes (e.g. {example}): no row could be predicted right", where=loaded.ref.uri,
            fix="evaluate on a snapshot with the model's recipe (its rollups, growth forms, included labels), "
                "or pick the model trained for this snapshot's classes")


def class_names(lake: Lake, rows: pl.DataFrame, keys: list[str], versions: dict[str, int] | None = None) -> dict[str, str]:
    """``"Benthic attribute / Growth form"`` per class key: the rows' names, else the lake's taxonomy at ``versions``."""
    from mermaid_train.labels import TaxonomyNames

    labels = runfolder.class_labels(rows, keys).fill(TaxonomyNames.from_lake(lake, versions).labels(keys))
    return dict(zip(keys, labels.names))


# -- the folder ------------------------------------------------------------------------------------------


def _write(result: EvaluationResult, lake: Lake, scored_rows: pl.DataFrame, runtime: float) -> EvaluationResult:
    out = result.out_dir
    work = out.with_name(f".{out.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.mkdir(parents=True)
        scores = result.scores
        with warnings.catch_warnings():  # the per-epoch plot of a run with no epochs: "no artists with labels"
            warnings.simplefilter("ignore", UserWarning)
            files = {f"metrics/{k}": v for k, v in scores.metrics.write(work / "metrics").items()}
        (work / "metrics" / "metrics.json").write_text(json.dumps(
            {k: v for k, v in sorted(scores.headline.items()) if not math.isnan(v)}, indent=2))
        for name in EPOCH_FILES:
            files.pop(f"metrics/{name}", None)
            (work / "metrics" / name).unlink(missing_ok=True)
        files["annotations_eval.csv"] = work / "annotations_eval.csv"
        annotations_table(scores, scored_rows).write_csv(files["annotations_eval.csv"])
        files["unknown_classes.csv"] = work / "unknown_classes.csv"
        scores.unknown.write_csv(files["unknown_classes.csv"])
        files.update(runfolder.copy_snapshot_reports(lake, result.snapshot_id, work / "snapshot"))
        files["report.html"] = write_report(work, result)
        result = replace(result, runtime_s=runtime)
        files["evaluation.yaml"] = work / "evaluation.yaml"
        files["evaluation.yaml"].write_text(yaml.safe_dump(summary(result), sort_keys=False))
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return replace(result, files={name: out / path.relative_to(work) for name, path in files.items()})


def write_report(work: Path, result: EvaluationResult) -> Path:
    """``report.html``: the evaluation's metrics, plots (from ``metrics/``), tables with names, the model, the
    evaluation snapshot's recipe and links to it (``mermaid_train.report``)."""
    from mermaid_train.lineage import recipe_params
    from mermaid_train.report import ReportInfo
    from mermaid_train.report import write_report as write_page

    ref, c, h = result.model, result.counts, result.headline
    facts = [("model", ref.source), ("rows", result.rows),
             ("rows: snapshot / selected / scored", f"{c['snapshot_rows']:,} / {c['selected_rows']:,} / {c['scored']:,}"),
             ("rows of classes the model does not know (counted as wrong)",
              f"{c['unknown_class']:,} in {int(h['unknown_classes'])} classes")]
    if ref.run_id or ref.run_folder:
        facts.append(("training run", f"{ref.run_name or ''} ({ref.run_id or ref.run_folder})".strip()))
    if ref.training_snapshot_id:
        facts.append(("trained on snapshot", ref.training_snapshot_id))
    facts.append(("snapshot content SHA-256", str(result.manifest.get("content_sha256", ""))))
    info = ReportInfo(title=f"{ref.label} on {result.snapshot_id}: evaluation report", kind="evaluation",
                      run_name=result.name, model=ref.uri, snapshot_id=result.snapshot_id, lake=result.lake,
                      facts=tuple(facts),
                      recipe={k: "" if v is None else str(v) for k, v in recipe_params(result.manifest).items()})
    return write_page(work / "report.html", result.scores.metrics, info, plots_dir=work / "metrics")


def annotations_table(scores: EvaluationScores, rows: pl.DataFrame) -> pl.DataFrame:
    """Every scored row: its ids, truth and prediction (keys and names), confidence, correct, known class."""
    keys = np.asarray(scores.metrics.classes, dtype=object)
    names = np.asarray(scores.metrics.class_names, dtype=object)
    k = int(scores.headline["model_classes"])
    table = pl.DataFrame({
        "true_class": keys[scores.truth].astype(str), "true_name": names[scores.truth].astype(str),
        "predicted_class": keys[scores.predicted].astype(str), "predicted_name": names[scores.predicted].astype(str),
        "confidence": scores.confidence, "correct": scores.truth == scores.predicted, "known_class": scores.truth < k,
    })
    ids = rows.select([c for c in runfolder.ROW_ID_COLUMNS if c in rows.columns])
    return pl.concat([ids, table], how="horizontal")


def summary(result: EvaluationResult) -> dict:
    """evaluation.yaml: which model, on which snapshot, which rows, and how well."""
    manifest = result.manifest
    ref = result.model
    return {
        "name": result.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "format": EVALUATION_FORMAT,
        "model": {"uri": ref.uri, "key": ref.key, "kind": ref.kind, "label": ref.label,
                  "registered_name": ref.registered_name, "registered_version": ref.registered_version,
                  "alias": ref.alias, "training_run_id": ref.run_id, "training_run_name": ref.run_name,
                  "training_snapshot_id": ref.training_snapshot_id,
                  "run_folder": None if ref.run_folder is None else str(ref.run_folder),
                  "classes": int(result.headline["model_classes"])},
        "snapshot": {"id": result.snapshot_id, "name": manifest.get("name"), "lake": result.lake,
                     "rows": int(manifest.get("row_count", 0)), "content_sha256": manifest.get("content_sha256"),
                     "digest": snapshot_digest(manifest), "created_at": manifest.get("created_at"),
                     "input_versions": (manifest.get("recipe") or {}).get("input_versions")},
        "rows": result.rows,
        "counts": result.counts,
        "unknown_classes": result.scores.unknown.to_dicts(),
        "metrics": {k: round(float(v), 6) for k, v in sorted(result.headline.items()) if not math.isnan(v)},
        "runtime_s": round(result.runtime_s, 3),
    }


__all__ = ["DEFAULT_OUT_DIR", "EVALUATION_FORMAT", "ROWS", "annotations_table", "class_names", "evaluate", "summary"]
