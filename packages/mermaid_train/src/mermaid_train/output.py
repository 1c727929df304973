"""Everything ``mermaid-train`` prints: a run's headline figures and where it is, ``compare``'s tables, predictions."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

console = Console()


def _quality_rows(h: dict[str, float]) -> list[tuple[str, str]]:
    """Rows a training run and an evaluation both print: top-k, calibration, cover error, per-source accuracy."""
    rows = []
    tops = [f"top-{k} {h[f'top_{k}_accuracy']:.4f}" for k in (3, 5) if f"top_{k}_accuracy" in h]
    if tops:
        rows.append(("top-k accuracy", ", ".join(tops)))
    if "ece" in h:
        rows.append(("expected calibration error", f"{h['ece']:.4f}"))
    rows.append(("cover error: mean |bias| / RMSE (pp)", f"{h['cover_mean_abs_bias_pp']:.2f} / {h['cover_rmse_pp']:.2f}"))
    if "source_accuracy_min" in h:
        rows.append(("per-source accuracy min / median / max",
                     f"{h['source_accuracy_min']:.3f} / {h['source_accuracy_median']:.3f} / {h['source_accuracy_max']:.3f}"))
    return rows


def _root_error_rows(h: dict[str, float]) -> list[tuple[str, str]]:
    if "error_same_root_share" not in h:
        return []
    return [("errors within the same root group", f"{h['error_same_root_share']:.1%} of {int(h['errors']):,}")]


def print_result(result) -> None:
    """Headline metrics and where everything is."""
    h = result.headline
    table = Table(title=f"{result.run_name}: snapshot {result.snapshot_id}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("annotations train / ref / val", " / ".join(f"{result.counts[k]:,}" for k in ("train", "ref", "val"))),
        ("classes (dropped as too rare)", f"{len(result.classes)} ({len(result.dropped_classes)})"),
        ("accuracy", f"{h['accuracy']:.4f}"),
        ("balanced accuracy", f"{h['balanced_accuracy']:.4f}"),
        ("macro precision / recall / F1", f"{h['macro_precision']:.4f} / {h['macro_recall']:.4f} / {h['macro_f1']:.4f}"),
    ]
    rows += _quality_rows(h)
    rows.append((f"recipe ({result.recipe_id})", _recipe_line(result.recipe)))
    if "mcc" in h:
        rows.append(("MCC / log loss", f"{h['mcc']:.4f} / {h.get('log_loss', float('nan')):.4f}"))
    rows += _root_error_rows(h)
    rows.append(("ref accuracy by epoch", " ".join(f"{a:.3f}" for a in result.ref_accs)))
    if len(result.epochs) and not math.isnan(result.epochs[0].ref_loss):
        rows.append(("ref loss by epoch", " ".join(f"{e.ref_loss:.3f}" for e in result.epochs)))
        stopped = " (stopped early)" if h.get("stopped_early") else ""
        rows.append(("epoch kept", f"{result.best_epoch} of {len(result.epochs)}{stopped}"))
    if result.logit_adjustment is not None or h.get("logit_adjustment_tau"):
        tau = f"{h.get('logit_adjustment_tau', 0):g}"
        ref = f"{h.get('model_ref_accuracy', math.nan):.4f} / {h.get('model_ref_balanced_accuracy', math.nan):.4f}"
        rows.append(("logit adjustment tau (ref accuracy / balanced)", f"{tau} ({ref})"))
    if result.subsample is not None:
        rows.append(("train subsample (kept of before)",
                     f"{int(result.subsample.counts['kept'].sum()):,} of {int(result.subsample.counts['before'].sum()):,}"))
    for i, acc in enumerate(result.previous_accuracies):
        rows.append((f"previous model {i + 1} accuracy", f"{acc:.4f}"))
    if result.passes_coralnet_rule is not None:
        rows.append(("passes CoralNet's 1.01x rule", "yes" if result.passes_coralnet_rule else "no"))
    speed = f", {h['train_gflops']:.1f} GFLOP/s on {int(h['blas_threads'])} BLAS thread(s)" if "train_gflops" in h else ""
    rows.append(("train time (s)", f"{h['train_runtime_s']:.1f} (whole run {result.runtime_s:.1f}{speed})"))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if result.run_id:
        console.print(f"MLflow run {result.run_id} in {result.tracking_uri}", highlight=False, soft_wrap=True)
        if result.run_url:
            console.print(f"  run: {result.run_url}", highlight=False, soft_wrap=True)
        if result.experiment_url:
            console.print(f"  experiment (its runs): {result.experiment_url}", highlight=False, soft_wrap=True)
        if result.registered_model:
            console.print(f"registered model {result.registered_model}, version {result.registered_version}",
                          highlight=False, soft_wrap=True)
        console.print(f"model: {result.model_uri}; pyspacer classifier: {result.classifier_uri}", highlight=False,
                      soft_wrap=True)
        console.print(f"artifacts (metrics, plots, reports): {result.artifact_uri}", highlight=False, soft_wrap=True)
    else:
        console.print(f"run folder: {result.out_dir} (classifier: {result.model_path})", highlight=False, soft_wrap=True)


def _recipe_line(recipe) -> str:
    net = ",".join(str(v) for v in recipe.hidden_layer_sizes or ()) or "-"
    parts = [recipe.preset, f"{recipe.clf_type} ({net})" if recipe.clf_type == "MLP" else recipe.clf_type,
             f"lr {recipe.learning_rate:g}" if recipe.learning_rate else "", f"batch {recipe.step_batch()}",
             f"weights {recipe.class_weighting}" if recipe.class_weighting else "",
             f"patience {recipe.early_stopping_patience} on {recipe.early_stopping_metric}"
             if recipe.early_stopping_patience else "",
             f"logit adjustment {recipe.logit_adjustment}" if recipe.logit_adjustment is not None else "",
             f"subsample {recipe.subsample}" if recipe.subsample else "", recipe.pack_dtype]
    return ", ".join(p for p in parts if p)


def print_comparison(result: dict) -> None:
    """``compare``'s overview table and per-label F1 differences."""
    from mermaid_data.cli import write_frame

    write_frame(result["overview"], "table", None)
    if result["identical_params"]:
        console.print(f"({result['identical_params']} other options are identical in every run)")
    f1 = result["f1"]
    if f1.height:
        console.print("per-label F1, largest differences first:")
        write_frame(f1.with_columns([f1[c].round(4) for c in f1.columns if c.startswith(("f1_", "delta"))]),
                    "table", None)


def print_cleanup(report) -> None:
    """``cleanup``: what was removed and failed, and what a live process still owns."""
    for line in report.lines():
        console.print(line, highlight=False, soft_wrap=True)
    if not report.removed and not report.failed_runs:
        console.print("nothing to clean: no leftovers of dead trainers", highlight=False)
    elif report.removed:
        console.print(f"freed {report.removed_bytes / 1e6:,.1f} MB", highlight=False)
    for folder in report.kept_live:
        console.print(f"kept {folder} (a live process's, or too new to judge)", highlight=False, soft_wrap=True)


def print_evaluation(result) -> None:
    """An evaluation's headline (accuracy over all rows and over known-class rows, labelled), and where it is."""
    h = result.headline
    c = result.counts
    ref = result.model
    table = Table(title=f"{ref.label} on snapshot {result.snapshot_id} ({result.rows} rows)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [("model", ref.uri if ref.uri == ref.key else f"{ref.uri} = {ref.key}")]
    if ref.run_id or ref.run_folder:
        rows.append(("trained by", f"{ref.run_name or ''} ({ref.run_id or ref.run_folder})".strip()))
    if ref.training_snapshot_id:
        rows.append(("trained on snapshot", ref.training_snapshot_id))
    rows += [
        ("rows: snapshot / selected / scored", f"{c['snapshot_rows']:,} / {c['selected_rows']:,} / {c['scored']:,}"
         + (f" ({c['missing_features']:,} without features)" if c["missing_features"] else "")),
        ("classes: model / in the truth / unknown to the model",
         f"{int(h['model_classes'])} / {int(h['eval_classes'])} / {int(h['unknown_classes'])}"),
        (f"accuracy, all {c['scored']:,} rows", f"{h['accuracy']:.4f}"),
    ]
    if "accuracy_known_classes" in h:
        rows.append((f"accuracy, the {c['known_class']:,} rows of classes the model knows",
                     f"{h['accuracy_known_classes']:.4f}"))
    rows.append(("balanced accuracy, all classes / known classes",
                 f"{h['balanced_accuracy']:.4f} / {h.get('balanced_accuracy_known_classes', math.nan):.4f}"))
    rows.append(("macro precision / recall / F1",
                 f"{h['macro_precision']:.4f} / {h['macro_recall']:.4f} / {h['macro_f1']:.4f}"))
    rows += _quality_rows(h)
    rows.append(("MCC / log loss (known classes)", f"{h['mcc']:.4f} / {h.get('log_loss', math.nan):.4f}"))
    rows += _root_error_rows(h)
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    unknown = result.scores.unknown
    if unknown.height:
        listed = ", ".join(f"{n} ({r:,})" for n, r in unknown.select("name", "rows").head(5).iter_rows())
        more = f" and {unknown.height - 5} more" if unknown.height > 5 else ""
        console.print(f"{c['unknown_class']:,} rows of {unknown.height} classes the model does not know (counted as "
                      f"wrong): {listed}{more}", highlight=False, soft_wrap=True)
    console.print(f"evaluation folder: {result.out_dir}", highlight=False, soft_wrap=True)
    if result.run_id:
        console.print(f"MLflow evaluation run {result.run_id} in {result.tracking_uri}", highlight=False, soft_wrap=True)
        if result.run_url:
            console.print(f"  run: {result.run_url}", highlight=False, soft_wrap=True)
        if result.experiment_url:
            console.print(f"  experiment (its runs): {result.experiment_url}", highlight=False, soft_wrap=True)


def print_model_comparison(comparison) -> None:
    """``compare --on``: the models side by side, the verdicts, per-label F1 differences with names."""
    from mermaid_data.cli import write_frame

    name = f" ({comparison.snapshot_name})" if comparison.snapshot_name else ""
    console.print(f"models on snapshot {comparison.snapshot_id}{name}", highlight=False, soft_wrap=True)
    write_frame(comparison.overview, "table", None)
    console.print(comparison.verdict.coralnet, highlight=False, soft_wrap=True)
    console.print(comparison.verdict.balanced, highlight=False, soft_wrap=True)
    f1 = comparison.f1
    if f1.height:
        console.print("per-label F1, largest differences first:")
        write_frame(f1.with_columns([f1[c].round(4) for c in f1.columns if c.startswith(("f1_", "delta"))]),
                    "table", None)


def print_prediction(prediction, *, top: int = 15) -> None:
    """What ``predict`` wrote: points, files, the model, speed, and the most predicted classes with names."""
    from mermaid_data.cli import write_frame

    seconds = prediction.seconds
    threshold = (f"; {prediction.low_confidence:,} below --min-confidence {prediction.min_confidence:g} "
                 "(no predicted class)" if prediction.min_confidence else "")
    console.print(f"predicted {prediction.points:,} points from {prediction.files:,} feature files with "
                  f"{prediction.model} ({prediction.classes} classes, top {prediction.top_k}){threshold}",
                  highlight=False, soft_wrap=True)
    console.print(f"wrote {prediction.output} ({prediction.format}); names from {prediction.names_from}",
                  highlight=False, soft_wrap=True)
    console.print(f"seconds: model {seconds['load_model']:.2f}, points {seconds['points']:.2f}, fetch "
                  f"{seconds['fetch']:.2f}, features + classify {seconds['features_and_classify']:.2f} "
                  f"({prediction.points_per_second:,.0f} points/s), write {seconds['write']:.2f}", highlight=False)
    summary = prediction.summary
    if summary.height:
        shown = summary.head(top).with_columns(summary["share"].head(top).round(4),
                                               summary["mean_confidence"].head(top).round(4))
        console.print(f"predicted classes ({min(top, summary.height)} of {summary.height}):")
        write_frame(shown, "table", None)
