"""The seed API's runners: ``TrainingRunner`` (no MLflow) and ``MLflowTrainingRunner``.

``run()`` = check every option (the recipe, previous model files, the run folder's place; with MLflow the
model name and the tracking server) → build or find the snapshot → split → fetch + pack features →
subsample the train set → train with pyspacer → val metrics → write the run folder → with MLflow, log it
all. It returns ``(return_msg, model_loc)`` as the seed documents: pyspacer's ``TrainClassifierReturnMsg``
and where the pyspacer-compatible classifier file is. The figures stay on ``runner.result`` (``RunResult``).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from mermaid_data import storage
from mermaid_data.lake import Lake
from mermaid_data.progress import Progress, SilentProgress
from spacer.messages import TrainClassifierReturnMsg

from mermaid_train import leftovers, runfolder
from mermaid_train.errors import LoggingFailed, TrackingError, TrainConfigError
from mermaid_train.lineage import recipe_params
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
from mermaid_train.recipe import Recipe
from mermaid_train.results import RunResult
from mermaid_train.tracking.profile import Profiler

#: CoralNet's champion/challenger rule: a new classifier replaces the old one if at least this much better.
CORALNET_IMPROVEMENT = 1.01


class TrainingRunner:
    """Train from a snapshot (built from ``dataset_options`` or given by ``snapshot_id``); no MLflow.

    Writes the run folder ``<runs_dir>/<run name>/`` (default ``./runs``, setting ``MERMAID_RUNS_DIR``);
    see ``mermaid_train.runfolder`` for its files.
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
        fetch_workers: int | None = None,
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
        self.fetch_workers = int(fetch_workers or settings.fetch_workers)
        self.progress = progress or SilentProgress()
        self.result: RunResult | None = None
        self.metrics: dict[str, float] = {}
        self.recipe: Recipe | None = None
        self._selection: AnnotationsSelection | None = None

    # -- hooks -----------------------------------------------------------------------------------------

    def preflight(self) -> None:
        """Check every option before any heavy work (the MLflow runner adds the model name and server)."""
        self.dataset_options.validate()
        self.training_options.validate()
        self.recipe = self.training_options.recipe()
        if self.fetch_workers < 1:
            raise TrainConfigError(f"fetch workers {self.fetch_workers} must be at least 1",
                                   fix="pass --fetch-workers N (MERMAID_FEATURE_FETCH_WORKERS), e.g. 50")
        check_previous_models(self.training_options.previous_model_locs)
        self._selection = parse_annotations_to_log(self.annotations_to_log())

    def annotations_to_log(self) -> str | None:
        return None

    def params(self, recipe: Recipe) -> dict[str, Any]:
        """Every option, with defaults resolved (the recipe trained with, the lake and tolerance in effect)."""
        params = flat_params(self.dataset_options, recipe,
                             previous_model_locs=self.training_options.previous_model_locs)
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
        check_runs_dir(self.runs_dir)
        self.reclaim_leftovers()
        result = self._train(self._out_dir())
        self._finish(result)
        return result.return_msg(), str(result.model_path)

    def reclaim_leftovers(self) -> leftovers.CleanupReport:
        """Remove what dead trainers left (packs, scratch and partial run folders; ``mermaid_train.leftovers``)."""
        report = leftovers.clean(cache_dir=self.cache_dir, runs_dir=self.runs_dir)
        for line in report.lines():
            self.progress.log(line)
        return report

    def _finish(self, result: RunResult) -> None:
        self.result = result
        self.metrics = dict(result.headline)

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
        """The pipeline (module docstring) into ``out_dir``, written under a scratch name and renamed."""
        from mermaid_train.features import FeatureCache, pack
        from mermaid_train.metrics import Taxonomy, compute_val_metrics
        from mermaid_train.model.spacer import train
        from mermaid_train.split import load_snapshot_rows, split_snapshot, subsample_train

        data, recipe = self.dataset_options, self.recipe or self.training_options.recipe()
        lake = self.lake
        prof = Profiler()
        started = time.perf_counter()
        work = out_dir.with_name(f".{out_dir.name}.partial")
        if work.exists():
            shutil.rmtree(work)
        try:
            with prof.section("snapshot"):
                created = False
                sid = self.snapshot_id
                if not sid:
                    snap = lake.create_snapshot(
                        data.snapshot_spec(name=self.run_name or "", message="built by mermaid_train"),
                        progress=self.progress)
                    sid, created = snap.snapshot_id, snap.created
                sid, manifest, rows = load_snapshot_rows(lake, sid)
                rows_schema = {name: str(dtype) for name, dtype in rows.schema.items()}
            self.snapshot_id = sid
            with prof.section("split"):
                split = split_snapshot(rows, ref_val_ratios=data.ref_val_ratios, seed=recipe.seed, mode=recipe.split)
                del rows
            selected = runfolder.select_annotations(split.rows, self._selection, sid)
            with prof.section("features"):
                ref, val = data.ref_val_ratios
                packed = pack(split, snapshot_id=sid, split_key=f"{recipe.split}-seed{recipe.seed}-ref{ref:g}-val{val:g}",
                              cache=FeatureCache(self.cache_dir / "features", workers=self.fetch_workers),
                              lake=lake, work_dir=self.cache_dir, missing_allowed_pct=data.missing_allowed_pct(),
                              dtype=recipe.pack_dtype, progress=self.progress, manifest=manifest)
            subsample = None
            if recipe.subsample is not None:
                with prof.section("subsample"):
                    subsample = subsample_train(packed.rows, recipe.subsample, packed.classes)
            work.mkdir(parents=True)
            leftovers.write_owner(work, "mermaid-train run")
            with prof.section("train"):
                outcome = train(packed, recipe, train_indices=None if subsample is None else subsample.kept,
                                previous_model_locs=self.training_options.previous_model_locs, out_dir=work,
                                progress=self.progress)
            with prof.section("metrics"):
                names = runfolder.class_names(packed.rows, outcome.classes)
                images, sources, val_rows = runfolder.val_points(outcome)
                metrics = compute_val_metrics(
                    outcome.val_gt, outcome.val_est, outcome.classes, scores=outcome.val_scores, image_ids=images,
                    source_keys=sources, class_names=names,
                    taxonomy=Taxonomy.from_lake(lake, manifest.get("recipe", {}).get("input_versions")),
                    epochs=outcome.epochs, best_epoch=outcome.best_epoch)
            with prof.section("reports"):
                files = runfolder.write_tables(work, metrics=metrics, outcome=outcome, names=names, rows=val_rows,
                                               split=split, selected=selected, selection=self._selection,
                                               subsample=subsample)
                files.update(runfolder.copy_snapshot_reports(lake, sid, work / "snapshot"))

            runtime = time.perf_counter() - started
            previous = list(outcome.previous_accuracies)
            passes = (all(outcome.accuracy >= CORALNET_IMPROVEMENT * p for p in previous) if previous else None)
            counts = {name: int((packed.split == code).sum()) for code, name in enumerate(("train", "ref", "val"))}
            if subsample is not None:
                counts["train_before_subsample"] = counts["train"]
                counts["train"] = len(subsample.kept)
            headline = {**metrics.headline, **_training_figures(outcome), "run_runtime_s": float(runtime)}
            for i, acc in enumerate(previous):
                headline[f"previous_model_{i}_accuracy"] = float(acc)
            dropped = dict(split.dropped_classes)
            if subsample is not None:
                dropped.update(subsample.dropped_classes)
            result = RunResult(
                run_name=self.run_name or out_dir.name, snapshot_id=sid, snapshot_created=created, manifest=manifest,
                lake=str(lake.uri), out_dir=out_dir, model_path=out_dir / outcome.model_path.name, counts=counts,
                classes=list(outcome.classes), dropped_classes=dropped, metrics=metrics, headline=headline,
                epochs=outcome.epochs, best_epoch=outcome.best_epoch, previous_accuracies=previous,
                passes_coralnet_rule=passes, runtime_s=runtime, sections=prof.frame(),
                params={**self.params(outcome.recipe), **recipe_params(manifest, lake)},  # the snapshot's recipe
                recipe=outcome.recipe, recipe_id=outcome.recipe.recipe_id(sid),
                packed_reused=bool(getattr(packed, "reused", False)), subsample=subsample,
                logit_adjustment=outcome.report.logit_adjustment if outcome.report else None,
                example_x=np.array(packed.x[packed.indices("val")[:5]], dtype=np.float32), rows_schema=rows_schema,
            )
            result.sections.write_csv(work / "profiled_sections.csv")
            files["profiled_sections.csv"] = work / "profiled_sections.csv"
            files["valresult.json"] = work / outcome.valresult_path.name
            files["classifier.pkl"] = work / outcome.model_path.name
            files["train_summary.yaml"] = runfolder.write_summary(
                work / "train_summary.yaml", runfolder.summary(result, outcome, packed))
            files["report.html"] = runfolder.write_report(work, result)
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            (work / leftovers.OWNER_FILE).unlink()
            os.replace(work, out_dir)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)  # nothing half-written
            raise
        return replace(result, files={name: out_dir / path.relative_to(work) for name, path in files.items()})


def _training_figures(outcome) -> dict[str, float]:
    """Headline figures of the training call itself (time, throughput, logit adjustment)."""
    out = {"train_runtime_s": float(outcome.runtime_s)}
    report = outcome.report
    if report is not None:
        if not math.isnan(outcome.gflops):
            out["train_gflops"] = float(outcome.gflops)
        out["blas_threads"] = float(report.blas_threads)
        out["stopped_early"] = float(report.stopped_early)
        out["logit_adjustment_tau"] = float(report.tau)
        out["model_ref_accuracy"] = float(report.ref_accuracy)  # the stored (calibrated) model on ref
        out["model_ref_balanced_accuracy"] = float(report.ref_balanced_accuracy)
        if report.logit_adjustment is not None:
            untouched = report.logit_adjustment.row(0.0)
            out["ref_accuracy_tau0"] = float(untouched["ref_accuracy"])
            out["ref_balanced_accuracy_tau0"] = float(untouched["ref_balanced_accuracy"])
    return out


def check_runs_dir(runs_dir: Path) -> None:
    """The runs folder must be a folder (or not exist yet) whose nearest existing parent is writable."""
    if runs_dir.exists() and not runs_dir.is_dir():
        raise TrainConfigError("the runs folder is a file, not a folder", where=str(runs_dir),
                               fix="pass --runs-dir (MERMAID_RUNS_DIR) a folder path, e.g. ./runs")
    existing = runs_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise TrainConfigError(f"the runs folder cannot be created: {existing} is a file", where=str(runs_dir),
                               fix="pass --runs-dir (MERMAID_RUNS_DIR) a folder path, e.g. ./runs")
    if not os.access(existing, os.W_OK):
        raise TrainConfigError("the runs folder is not writable", where=str(existing),
                               fix="pass --runs-dir (MERMAID_RUNS_DIR) a folder you can write to")


def check_previous_models(locations: tuple[str, ...]) -> None:
    """Every previous model must exist and load as a classifier, before any heavy work."""
    from mermaid_train.model.export import load_classifier

    for loc in locations:
        fix = "pass the classifier file of an earlier run (its classifier.pkl, a path or s3:// URI), or drop --previous-model"
        text = str(loc)
        if "://" in text:
            uri = storage.Uri.parse(text)
            if not storage.exists(uri):
                raise TrainConfigError("previous model file not found", where=text, fix=fix)
        else:
            path = Path(text).expanduser()
            if not path.is_file():
                raise TrainConfigError("previous model file not found" if not path.exists() else
                                       "previous model is not a file", where=text, fix=fix)
        try:
            model = load_classifier(text)
        except Exception as exc:  # noqa: BLE001 - unpickling errors of any kind
            raise TrainConfigError(f"previous model cannot be loaded ({type(exc).__name__}: {exc})", where=text,
                                   fix=fix) from None
        if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
            raise TrainConfigError(f"previous model is a {type(model).__name__}, not a fitted classifier",
                                   where=text, fix=fix)


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

    def params(self, recipe: Recipe) -> dict[str, Any]:
        params = {**super().params(recipe), **{k: v for k, v in flat_params(
            self.dataset_options, recipe, self.mlflow_options).items() if k.startswith("mlflow.")}}
        params["mlflow.experiment_name"] = self.mlflow_options.resolved_experiment()
        params["mlflow.model_name"] = self.model_name or self.mlflow_options.resolved_model_name() or ""
        params.pop("mlflow.tracking_uri", None)  # may hold credentials; the run's location says where it is
        return params

    def preflight(self) -> None:
        from mermaid_train.options import timestamped, validate_model_name
        from mermaid_train.tracking.mlflow import check_tracking, resolve_tracking_uri

        super().preflight()
        self.mlflow_options.validate()
        self.tracking_uri = resolve_tracking_uri(self.mlflow_options.tracking_uri)
        check_tracking(self.tracking_uri, self.mlflow_options.resolved_experiment())
        # versions of one registered model accumulate; the run gets the date/time (as upstream names runs)
        self.model_name = validate_model_name(self.mlflow_options.resolved_model_name() or self._recipe_model_name())
        if self.run_name is None:
            self.run_name = timestamped(self.model_name)

    def _recipe_model_name(self) -> str:
        """The default model name of the recipe: the snapshot's (an ID given), else the options' files."""
        from mermaid_data.snapshot.lifecycle import manifest

        from mermaid_train.lineage import model_name_from_manifest, model_name_from_options

        if self.snapshot_id:
            return model_name_from_manifest(manifest(self.lake, self.snapshot_id))
        return model_name_from_options(self.dataset_options)

    def reclaim_leftovers(self) -> leftovers.CleanupReport:
        """Also mark FAILED the RUNNING runs of this experiment whose trainer died (a few seconds at most)."""
        from mermaid_train.tracking.mlflow import bounded, fail_orphaned_runs, within

        report = super().reclaim_leftovers()
        uri, experiment = self.tracking_uri or "", self.mlflow_options.resolved_experiment()
        try:
            with bounded(5, 0):
                failed = within(15, lambda: fail_orphaned_runs(uri, experiment), "marking orphaned runs", uri)
        except Exception:  # noqa: BLE001 - never a reason not to train; `mermaid-train cleanup` retries
            failed = []
        for run_id in failed:
            self.progress.log(f"marked MLflow run {run_id} FAILED (its trainer died while logging)")
        return replace(report, failed_runs=list(failed))

    def run(self) -> tuple[TrainClassifierReturnMsg, str]:
        """Train in a scratch folder, log it, remove it. If logging fails, the run folder is kept in
        ``runs_dir`` (with what ``mermaid-train log`` needs) and the one-line error says where."""
        from mermaid_train.tracking.mlflow import log_run

        self.preflight()
        check_runs_dir(self.runs_dir)
        self.reclaim_leftovers()
        scratch = Path(tempfile.mkdtemp(prefix=leftovers.SCRATCH_PREFIX))
        leftovers.write_owner(scratch, "mermaid-train run")
        try:
            result = self._train(scratch / (self.run_name or "run"))
            try:
                logged = log_run(result, tracking_uri=self.tracking_uri, experiment=self.mlflow_options.resolved_experiment(),
                                 model_name=self.model_name, register=self.mlflow_options.register_model,
                                 progress=self.progress)
            except LoggingFailed as exc:
                raise self._keep(result, exc) from None
            except BaseException as exc:  # interrupted while logging: the trained model is kept too
                self.progress.log(str(self._keep(result, exc)))
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        result = replace(result, model_path=None, files={}, **logged)  # the files live in MLflow now
        self._finish(result)
        return result.return_msg(), result.classifier_uri or result.model_uri or ""

    def _keep(self, result: RunResult, exc: BaseException) -> TrackingError:
        """Move the trained run folder to ``runs_dir`` with a record to log it later; the error to raise."""
        from mermaid_train.tracking import pending

        target = self._out_dir()
        target.parent.mkdir(parents=True, exist_ok=True)
        # moved (maybe copied: the temp folder can be another file system) under a partial name with its
        # owner recorded, then renamed: a trainer killed while moving leaves a leftover, not half a run
        partial = target.with_name(f".{target.name}{leftovers.PARTIAL_SUFFIX}")
        shutil.move(str(result.out_dir), str(partial))
        leftovers.write_owner(partial, "mermaid-train run")
        kept = replace(result, out_dir=target, model_path=target / Path(result.model_path).name,
                       files={name: target / Path(path).relative_to(result.out_dir) for name, path in result.files.items()})
        failed = exc.run_id if isinstance(exc, LoggingFailed) else None
        problem = exc.problem if isinstance(exc, LoggingFailed) else f"logging to MLflow was interrupted ({type(exc).__name__})"
        pending.save(partial, pending.PendingLog(kept, self.tracking_uri or "", self.mlflow_options.resolved_experiment(),
                                                 self.model_name or "", self.mlflow_options.register_model, failed, problem))
        (partial / leftovers.OWNER_FILE).unlink()
        os.replace(partial, target)
        self._finish(kept)
        return TrackingError(
            f"{problem}; the trained model and reports are kept in {target} (classifier: {kept.model_path})",
            where=self.tracking_uri,
            fix=f"once the tracking server answers, log them with `mermaid-train log {target}` "
            "(add --tracking-uri URI to log them elsewhere)",
        )


__all__ = ["MLflowTrainingRunner", "RunResult", "TrainingRunner", "check_previous_models", "check_runs_dir"]
