"""Training benchmark: pyspacer's stock MiniBatchTrainer against our presets, on one demo snapshot.

    uv run --frozen python bench/train.py --annotations 200000 [--preset pyspacer --preset upstream]
        [--variants all|presets] [--skip-stock] [--workdir DIR]

1. Demo sources of N annotations *with* feature files (1280-d pyspacer ImageFeatures) are generated and
   ingested into ``DIR/lake``, and one snapshot is created: MERMAID plus every CoralNet source, keeping
   the ``--classes`` (default 40) most frequent classes through an include CSV (long-tailed counts).
   This preparation is reused by later runs with the same arguments and is not what is measured.
2. numpy's float32 GEMM throughput is measured at the upstream network's shapes (the products of one
   training step) on one thread and on every core; each run also measures the every-core figure at its
   own network's shapes just before and after its fit (2 s each, outside the timings): the yardstick of
   its GFLOP/s (``share``), taken while the machine is in the same state.
3. Each measured run is a separate child process (so peak RSS is its own), end to end from the
   snapshot ID (split by image, seed 0, ref/val 0.1/0.1; pack; train; score val):

   - ``stock``: pyspacer ``ImageLabels`` pointing at the lake's feature files, then
     ``spacer.tasks.train_classifier`` with ``MiniBatchTrainer`` (it decompresses every feature file each
     epoch), 10 epochs;
   - ``pyspacer``: our trainer, preset ``pyspacer`` (pyspacer's recipe), first with a fresh feature cache
     (fetch + pack + train), then again reusing the packed arrays (``pyspacer rerun``);
   - ``upstream``: preset ``upstream`` (effective-number weights, early stopping on ref balanced accuracy);
   - with ``--variants all`` (default below 1M annotations) also: ``upstream stop=ref_loss`` (early
     stopping on the ref loss, upstream's rule), ``upstream unweighted``, ``upstream unweighted + logit adj``
     (tau chosen on ref) and ``upstream float16`` (the pack in float16).
4. A table, budgets with PASS/FAIL, and as the last lines one per preset (upstream last)::

    preset=<name> fit_s=<s> gflops_share=<0..1> accuracy=<x> balanced_accuracy=<x> speedup_vs_stock=<x> peak_rss_gb=<x>

Budgets (issue 11, N = 200,000 on the 2-core machine): upstream at >= 60% of the measured 2-core GEMM
throughput; weighted balanced accuracy >= 4 points above unweighted at <= 3 points of accuracy lost;
logit adjustment's balanced accuracy >= weighting's; float16 accuracy within 0.2 points of float32;
pyspacer >= 3x stock end to end, accuracy within 0.5 points, rerun >= 4x. N = 1,000,000 with
``--skip-stock``: peak RSS under 8 GB for every run. Missed budgets are reported (exit status 0).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_WORKDIR = Path(__file__).resolve().parent / "out" / "train"
_RESULT = "BENCH_RESULT "
UPSTREAM_NETWORK = (500, 300, 100)
VARIANTS = {  # name -> TrainingOptions keyword arguments
    "pyspacer": {"preset": "pyspacer"},
    "upstream": {"preset": "upstream"},
    "upstream stop=ref_loss": {"preset": "upstream", "early_stopping_metric": "ref_loss"},
    "upstream unweighted": {"preset": "upstream", "class_weighting": "none"},
    "upstream unweighted + logit adj": {"preset": "upstream", "class_weighting": "none", "logit_adjustment": "auto"},
    "upstream float16": {"preset": "upstream", "pack_dtype": "float16"},
}


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def _load() -> str:
    one, five, _ = os.getloadavg()
    pressure = ""
    try:
        pressure = Path("/proc/pressure/cpu").read_text().split()[1]  # some avg10=...
    except OSError:
        pass
    return f"load {one:.2f} / {five:.2f} (1 / 5 min){', cpu pressure ' + pressure if pressure else ''}"


# ----------------------------------------------------------------------------------------------------
# preparation (not measured)
# ----------------------------------------------------------------------------------------------------


def prepare(workdir: Path, annotations: int, seed: int, n_classes: int) -> dict:
    """Demo sources with features -> lake -> one snapshot; returns {"snapshot_id", ...}."""
    from mermaid_data import Lake
    from mermaid_data.demo import generate_demo_sources
    from mermaid_data.ingest import ingest
    from mermaid_data.snapshot import SnapshotSpec

    marker = workdir / "prepared.json"
    wanted = {"annotations": annotations, "seed": seed, "classes": n_classes, "format": 2}
    if marker.is_file():
        done = json.loads(marker.read_text())
        if {k: done.get(k) for k in wanted} == wanted:
            return done
    for name in ("sources", "lake", "recipe", "ours", "stock"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    marker.unlink(missing_ok=True)
    sources = workdir / "sources"
    started = time.perf_counter()
    print(f"generating {annotations:,} annotations with features ...", file=sys.stderr, flush=True)
    generate_demo_sources(sources, annotations=annotations, seed=seed, features=True)
    lake = Lake.open(str(workdir / "lake"))
    print("ingesting ...", file=sys.stderr, flush=True)
    ingest(lake, mermaid_uri=str(sources / "mermaid" / "mermaid_confirmed_annotations.parquet"),
           coralnet_uri=str(sources / "coralnet"), api=str(sources / "api"))
    classes = lake.sql(
        "SELECT m.benthic_attribute_id AS ba, m.growth_form_id AS gf, count(*) AS n "
        "FROM annotations_mapped m JOIN features f USING (site, source_id, image_id) "
        "GROUP BY ALL ORDER BY n DESC, ba, gf LIMIT ?", [n_classes])
    recipe = workdir / "recipe"
    recipe.mkdir(exist_ok=True)
    (recipe / "include.csv").write_text(
        "ba_id,gf_id\n" + "".join(f"{b},{g or ''}\n" for b, g in zip(classes["ba"], classes["gf"])))
    source_ids = lake.sql("SELECT DISTINCT source_id FROM annotations_stored WHERE site = 'coralnet'")["source_id"]
    (recipe / "sources.csv").write_text("id\n" + "".join(f"{s}\n" for s in sorted(source_ids.to_list(), key=int)))
    spec = SnapshotSpec(coralnet_sources_csv=recipe / "sources.csv", included_labels_csv=recipe / "include.csv",
                        name="bench-train")
    print("creating the snapshot ...", file=sys.stderr, flush=True)
    result = lake.create_snapshot(spec)
    counts = sorted((c["annotations"] for c in result.manifest["label_counts"]), reverse=True)
    done = {**wanted, "snapshot_id": result.snapshot_id, "rows": result.manifest["row_count"],
            "class_counts": counts, "prepare_s": round(time.perf_counter() - started, 1)}
    marker.write_text(json.dumps(done, indent=2))
    return done


# ----------------------------------------------------------------------------------------------------
# measured children
# ----------------------------------------------------------------------------------------------------


def _split(workdir: Path, snapshot_id: str):
    from mermaid_data import Lake
    from mermaid_train.split import load_snapshot_rows, split_snapshot

    lake = Lake.open(str(workdir / "lake"))
    sid, _manifest, rows = load_snapshot_rows(lake, snapshot_id)
    return lake, sid, split_snapshot(rows, ref_val_ratios=(0.1, 0.1), seed=0, mode="images")


def _scores(gt, est, classes, scores, val_rows) -> dict:
    from mermaid_train.metrics import compute_val_metrics

    sources = (val_rows["site"] + "/" + val_rows["source_id"].cast(str)).to_numpy() if val_rows is not None else None
    h = compute_val_metrics(gt, est, classes, scores=scores, source_keys=sources).headline
    return {"accuracy": h["accuracy"], "balanced_accuracy": h["balanced_accuracy"],
            "worst_source_accuracy": h.get("source_accuracy_min", float("nan"))}


def child_stock(workdir: Path, snapshot_id: str, epochs: int) -> dict:
    from mermaid_train.features import feature_uris
    from mermaid_train.model.spacer import stock_task_labels
    from spacer.data_classes import DataLocation
    from spacer.messages import TrainClassifierMsg
    from spacer.tasks import train_classifier
    from spacer.train_classifier import MiniBatchTrainer

    out = workdir / "stock"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    lake, _sid, split = _split(workdir, snapshot_id)
    rows = feature_uris(lake, split.rows)
    labels, _starts = stock_task_labels(rows, lambda uri: DataLocation("filesystem", uri))
    msg = TrainClassifierMsg(
        job_token="bench-stock", trainer=MiniBatchTrainer(), nbr_epochs=epochs, clf_type="MLP", labels=labels,
        previous_model_locs=[], model_loc=DataLocation("filesystem", str(out / "classifier.pkl")),
        valresult_loc=DataLocation("filesystem", str(out / "valresult.json")),
        feature_cache_dir=TrainClassifierMsg.FeatureCache.DISABLED)
    fit_started = time.perf_counter()
    result = train_classifier(msg)
    fit_s = time.perf_counter() - fit_started
    wall = time.perf_counter() - started
    valres = json.loads((out / "valresult.json").read_text())
    val = rows.filter(rows["split"] == "val")
    scores = _scores(valres["gt"], valres["est"], valres["classes"], None,
                     val.filter(val["class_key"].is_in(valres["classes"])))
    return {"wall_s": wall, "fit_s": fit_s, **scores, "accuracy": result.acc, "epochs": len(result.ref_accs),
            "best_epoch": len(result.ref_accs) - 1, "peak_rss_gb": _peak_rss_gb(), "counts": split.counts()}


def child_ours(workdir: Path, snapshot_id: str, name: str, epochs: int | None, fresh: bool) -> dict:
    from mermaid_train.features import FeatureCache, pack
    from mermaid_train.model.spacer import train
    from mermaid_train.options import TrainingOptions

    recipe = TrainingOptions(**{**VARIANTS[name], **({"epochs": epochs} if epochs else {})}).recipe()
    work = workdir / "ours"
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    run_dir = work / "runs" / name.replace(" ", "_")
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    lake, sid, split = _split(workdir, snapshot_id)
    split_s = time.perf_counter() - started
    packed = pack(split, snapshot_id=sid, split_key="images-0.1-0.1-seed0", cache=FeatureCache(work / "cache"),
                  lake=lake, work_dir=work, missing_allowed_pct=5.0, dtype=recipe.pack_dtype)
    packed_s = time.perf_counter() - started
    yardstick = _yardstick(recipe, len(packed.classes))
    fit_started = time.perf_counter()
    outcome = train(packed, recipe, out_dir=run_dir)
    wall = packed_s + time.perf_counter() - fit_started
    yardstick = (yardstick + _yardstick(recipe, len(packed.classes))) / 2
    report = outcome.report
    return {"wall_s": wall, "split_s": split_s, "pack_s": packed_s - split_s, "fit_s": outcome.runtime_s,
            **_scores(outcome.val_gt, outcome.val_est, outcome.classes, outcome.val_scores, outcome.val_rows),
            "epochs": len(outcome.epochs), "best_epoch": outcome.best_epoch, "gflops": outcome.gflops,
            "gemm_peak": yardstick,
            "blas_threads": report.blas_threads, "tau": report.tau, "pack_reused": packed.reused,
            "network": list(report.hidden_layer_sizes), "batch": recipe.step_batch(),
            "peak_rss_gb": _peak_rss_gb(), "rows": len(packed)}


def _yardstick(recipe, n_classes: int) -> float:
    """2-core float32 GEMM GFLOP/s at this run's network shapes, measured now (2 s; not part of wall times)."""
    from mermaid_train.model.blas import available_cores, gemm_gflops
    from mermaid_train.model.mlp import Architecture

    hidden, _rate = recipe.network(100_000)
    shapes = Architecture.for_classes(1280, hidden, n_classes).gemm_shapes(recipe.step_batch())
    return gemm_gflops(shapes, available_cores(), seconds=2.0)


def child_gemm(batch: int) -> dict:
    from mermaid_train.model.blas import available_cores, gemm_gflops
    from mermaid_train.model.mlp import Architecture

    shapes = Architecture.for_classes(1280, UPSTREAM_NETWORK, 40).gemm_shapes(batch)
    cores = available_cores()
    return {"cores": cores, "one": gemm_gflops(shapes, 1, seconds=3.0), "all": gemm_gflops(shapes, cores, seconds=3.0)}


def code_digest() -> str:
    """SHA-256 of this script and the mermaid_train sources: a saved result is only reused for the same code."""
    import hashlib

    import mermaid_train

    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(Path(mermaid_train.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _saved(workdir: Path, label: str) -> Path:
    return workdir / "results" / (label.replace(" ", "_").replace("+", "plus") + ".json")


def child_main(args: argparse.Namespace) -> dict:
    """Run one measured child; every result is saved to ``<workdir>/results/<label>.json``.

    With ``--reuse-results`` (or the file ``<workdir>/results/reuse``) a saved result for the same snapshot
    and the same code (``code_digest``) is returned instead of measuring again, marked ``reused``: for
    assembling one table from runs made separately (e.g. in parallel). Off by default.
    """
    label = args.name or args.child
    saved = _saved(args.workdir, label)
    reuse = args.reuse_results or (args.workdir / "results" / "reuse").is_file()
    stamp = {"snapshot_id": args.snapshot, "code": code_digest()}
    if reuse and saved.is_file():
        old = json.loads(saved.read_text())
        if {k: old.get(k) for k in stamp} == stamp:
            return {**old, "reused": True}
    if args.child == "stock":
        result = child_stock(args.workdir, args.snapshot, 10)
    elif args.child == "gemm":
        result = child_gemm(args.batch)
    else:
        result = child_ours(args.workdir, args.snapshot, args.name, None, args.fresh)
    result = {**result, **stamp, "load_after": _load()}
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(result, indent=2))
    return result


def run_child(args: argparse.Namespace, kind: str, snapshot_id: str, *extra: str) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--workdir", str(args.workdir), "--snapshot", snapshot_id,
           *extra, *(["--reuse-results"] if args.reuse_results else [])]
    print(f"running {kind} {' '.join(extra)} ({_load()}) ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"the {kind} child failed (exit {proc.returncode})")
    line = next(line for line in proc.stdout.splitlines() if line.startswith(_RESULT))
    return json.loads(line[len(_RESULT):])


def _verdict(ok: bool, budget: str) -> str:
    return "PASS" if ok else f"FAIL ({budget})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=int, default=200_000)
    parser.add_argument("--preset", action="append", choices=("pyspacer", "upstream"),
                        help="presets to run (repeatable; default both)")
    parser.add_argument("--variants", choices=("all", "presets"), default=None,
                        help="upstream's variants too (default: all below 1M annotations)")
    parser.add_argument("--classes", type=int, default=40, help="keep the N most frequent classes (20-50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-stock", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse-results", action="store_true",
                        help="reuse results saved in WORKDIR/results for the same snapshot and code (default: measure)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--fresh", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=512, help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workdir is None:
        args.workdir = DEFAULT_WORKDIR / str(args.annotations)
    args.workdir = args.workdir.resolve()

    if args.child:
        print(_RESULT + json.dumps(child_main(args)), flush=True)
        return

    presets = args.preset or ["pyspacer", "upstream"]
    variants = args.variants or ("all" if args.annotations < 1_000_000 else "presets")
    args.workdir.mkdir(parents=True, exist_ok=True)
    load_start = _load()
    prep = prepare(args.workdir, args.annotations, args.seed, args.classes)
    sid = prep["snapshot_id"]
    from mermaid_train.recipe import preset as recipe_preset

    gemm = run_child(args, "gemm", sid, "--batch", str(recipe_preset("upstream").step_batch()))
    stock = None if args.skip_stock else run_child(args, "stock", sid)
    runs: dict[str, dict] = {}
    first = True
    if "pyspacer" in presets:
        runs["pyspacer"] = run_child(args, "ours", sid, "--name", "pyspacer", "--fresh")
        runs["pyspacer rerun"] = run_child(args, "ours", sid, "--name", "pyspacer")
        first = False
    if "upstream" in presets:
        names = [n for n in VARIANTS if n.startswith("upstream")] if variants == "all" else ["upstream"]
        for name in names:
            runs[name] = run_child(args, "ours", sid, "--name", name, *(["--fresh"] if first else []))
            first = False
    load_end = _load()

    counts = prep["class_counts"]
    peak = gemm["all"]
    print(f"snapshot {sid}: {prep['rows']:,} rows, {len(counts)} classes ({counts[0]:,} .. {counts[-1]:,}); "
          f"machine: {load_start} at the start, {load_end} at the end")
    print(f"numpy float32 GEMM at the upstream network's shapes (batch {recipe_preset('upstream').step_batch()}): "
          f"{gemm['one']:.1f} GFLOP/s on 1 thread, {peak:.1f} GFLOP/s on {gemm['cores']}; each run's share is of "
          f"the {gemm['cores']}-core figure at its own shapes, measured just before and after its fit")
    header = ("run", "fit s", "end-to-end s", "peak RSS GB", "val acc", "bal acc", "worst src", "epochs (kept)",
              "GFLOP/s", "GEMM peak", "share", "BLAS thr")
    rows = []
    if stock:
        rows.append(("stock pyspacer", f"{stock['fit_s']:.1f}", f"{stock['wall_s']:.1f}", f"{stock['peak_rss_gb']:.2f}",
                     f"{stock['accuracy']:.4f}", f"{stock['balanced_accuracy']:.4f}",
                     f"{stock['worst_source_accuracy']:.3f}", f"{stock['epochs']}", "", "", "", ""))
    for name, run in runs.items():
        share = run["gflops"] / run["gemm_peak"] if run["gflops"] == run["gflops"] else float("nan")
        run["share"] = share
        rows.append((name + (" *" if run.get("reused") else ""), f"{run['fit_s']:.1f}", f"{run['wall_s']:.1f}", f"{run['peak_rss_gb']:.2f}",
                     f"{run['accuracy']:.4f}", f"{run['balanced_accuracy']:.4f}", f"{run['worst_source_accuracy']:.3f}",
                     f"{run['epochs']} ({run['best_epoch']})", f"{run['gflops']:.1f}", f"{run['gemm_peak']:.1f}",
                     f"{share:.2f}",
                     str(run["blas_threads"])))
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(row, widths))))

    checks = []
    if "upstream" in runs:
        up = runs["upstream"]
        checks.append(("upstream GEMM share", f"{up['share']:.2f}", _verdict(up["share"] >= 0.6, ">= 0.60")))
        if "upstream unweighted" in runs:
            plain = runs["upstream unweighted"]
            gain = (up["balanced_accuracy"] - plain["balanced_accuracy"]) * 100
            loss = (plain["accuracy"] - up["accuracy"]) * 100
            checks.append(("weighting: balanced accuracy gain (points)", f"{gain:+.2f}", _verdict(gain >= 4, ">= +4")))
            checks.append(("weighting: accuracy loss (points)", f"{loss:+.2f}", _verdict(loss <= 3, "<= 3")))
        if "upstream unweighted + logit adj" in runs:
            adj = runs["upstream unweighted + logit adj"]
            diff = (adj["balanced_accuracy"] - up["balanced_accuracy"]) * 100
            checks.append(("logit adjustment vs weighting, balanced accuracy (points)", f"{diff:+.2f} (tau {adj['tau']:g})",
                           _verdict(diff >= 0, ">= 0")))
        if "upstream float16" in runs:
            d16 = (runs["upstream float16"]["accuracy"] - up["accuracy"]) * 100
            checks.append(("float16 pack: accuracy vs float32 (points)", f"{d16:+.2f}", _verdict(abs(d16) <= 0.2, "|x| <= 0.2")))
    if stock and "pyspacer" in runs:
        speedup = stock["wall_s"] / runs["pyspacer"]["wall_s"]
        rerun = stock["wall_s"] / runs["pyspacer rerun"]["wall_s"]
        delta = (runs["pyspacer"]["accuracy"] - stock["accuracy"]) * 100
        checks += [("pyspacer: speedup vs stock (end to end)", f"{speedup:.2f}x", _verdict(speedup >= 3, ">= 3x")),
                   ("pyspacer: rerun speedup vs stock", f"{rerun:.2f}x", _verdict(rerun >= 4, ">= 4x")),
                   ("pyspacer: accuracy vs stock (points)", f"{delta:+.2f}", _verdict(abs(delta) <= 0.5, "|x| <= 0.5"))]
    if args.annotations >= 1_000_000:
        worst = max(r["peak_rss_gb"] for r in runs.values())
        checks.append(("peak RSS, every run (GB)", f"{worst:.2f}", _verdict(worst < 8, "< 8")))
    if any(r.get("reused") for r in runs.values()):
        print("* reused: measured by an earlier child (saved in WORKDIR/results, same snapshot and code)")
    if checks:
        width = max(len(c[0]) for c in checks)
        print()
        for name, value, verdict in checks:
            print(f"{name.ljust(width)}  {value:>22}  {verdict}")
    print()
    for name in ("pyspacer", "upstream"):
        if name not in runs:
            continue
        run = runs[name]
        speed = stock["wall_s"] / run["wall_s"] if stock else float("nan")
        print(f"preset={name} fit_s={run['fit_s']:.1f} gflops_share={run['share']:.2f} accuracy={run['accuracy']:.4f} "
              f"balanced_accuracy={run['balanced_accuracy']:.4f} speedup_vs_stock={speed:.2f} "
              f"peak_rss_gb={run['peak_rss_gb']:.2f}")


if __name__ == "__main__":
    main()
