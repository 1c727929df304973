"""Training benchmark: pyspacer's stock MiniBatchTrainer vs our packed trainer on one demo snapshot.

    uv run --frozen python bench/train.py --annotations 200000 [--epochs 10] [--skip-stock] [--workdir DIR]

1. Demo sources of N annotations *with* feature files (1280-d pyspacer ImageFeatures) are generated and
   ingested into ``DIR/lake``, and one snapshot is created: MERMAID plus every CoralNet source, keeping
   the ``--classes`` (default 40) most frequent classes through an include CSV (long-tailed counts).
   This preparation is reused by later runs with the same arguments and is not what is measured.
2. Each measured run is a separate child process (so peak RSS is its own), end to end from the
   snapshot ID, both on the same split (by image, seed 0, ref/val 0.1/0.1), for the same epochs:

   - stock: split, pyspacer ``ImageLabels`` pointing at the lake's feature files, then
     ``spacer.tasks.train_classifier`` with ``MiniBatchTrainer`` (it decompresses every feature file
     each epoch);
   - ours, first run: split, fetch the feature files into a fresh cache, pack them into float32 arrays,
     train with ``PackedTrainer`` through ``spacer.tasks.train_classifier``;
   - ours, second run: the same, reusing the cache and the packed arrays.

   Stock runs with pyspacer's defaults (OpenBLAS picks its thread count) unless ``--stock-blas-threads``
   is given; ours trains with one BLAS thread (see mermaid_train.trainer).

3. A table, then the last line::

    speedup=<stock s / ours first> rerun_speedup=<stock s / ours second> accuracy_delta_pp=<ours - stock> \
stock_accuracy=<0..1> peak_rss_gb=<ours>

Budget (issue 4, 2-core machine): N = 200,000, 10 epochs: ours >= 3x faster end to end, accuracy within
0.5 points of stock, second run >= 4x faster than stock; N = 1,000,000 with ``--skip-stock``: peak RSS
under 8 GB. Missed budgets are reported (exit status 0).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_WORKDIR = Path(__file__).resolve().parent / "out" / "train"
_RESULT = "BENCH_RESULT "


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


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
    wanted = {"annotations": annotations, "seed": seed, "classes": n_classes, "format": 1}
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


def child_stock(workdir: Path, snapshot_id: str, epochs: int, blas_threads: int | None) -> dict:
    from mermaid_data import Lake
    from mermaid_train.features import feature_uris
    from mermaid_train.split import load_snapshot_rows, split_snapshot
    from mermaid_train.trainer import stock_task_labels
    from spacer.data_classes import DataLocation
    from spacer.messages import TrainClassifierMsg
    from spacer.tasks import train_classifier
    from spacer.train_classifier import MiniBatchTrainer

    out = workdir / "stock"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    lake = Lake.open(str(workdir / "lake"))
    _sid, _manifest, rows = load_snapshot_rows(lake, snapshot_id)
    split = split_snapshot(rows, ref_val_ratios=(0.1, 0.1), seed=0, mode="images")
    rows = feature_uris(lake, split.rows)
    labels, _starts = stock_task_labels(rows, lambda uri: DataLocation("filesystem", uri))
    labelled = time.perf_counter() - started
    msg = TrainClassifierMsg(
        job_token="bench-stock", trainer=MiniBatchTrainer(), nbr_epochs=epochs, clf_type="MLP", labels=labels,
        previous_model_locs=[], model_loc=DataLocation("filesystem", str(out / "classifier.pkl")),
        valresult_loc=DataLocation("filesystem", str(out / "valresult.json")),
        feature_cache_dir=TrainClassifierMsg.FeatureCache.DISABLED)
    if blas_threads:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=blas_threads, user_api="blas"):
            result = train_classifier(msg)
    else:
        result = train_classifier(msg)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "labels_s": labelled, "accuracy": result.acc, "ref_accs": result.ref_accs,
            "peak_rss_gb": _peak_rss_gb(), "counts": split.counts(), "classes": len(split.classes)}


def child_ours(workdir: Path, snapshot_id: str, epochs: int, fresh: bool) -> dict:
    from mermaid_data import Lake
    from mermaid_train.features import FeatureCache, pack
    from mermaid_train.split import load_snapshot_rows, split_snapshot
    from mermaid_train.trainer import train

    work = workdir / "ours"
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    run_dir = work / "runs" / ("first" if fresh else "second")
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    lake = Lake.open(str(workdir / "lake"))
    sid, _manifest, rows = load_snapshot_rows(lake, snapshot_id)
    split = split_snapshot(rows, ref_val_ratios=(0.1, 0.1), seed=0, mode="images")
    split_s = time.perf_counter() - started
    packed = pack(split, snapshot_id=sid, split_key="images-0.1-0.1-seed0", cache=FeatureCache(work / "cache"),
                  lake=lake, work_dir=work, missing_allowed_pct=5.0)
    packed_s = time.perf_counter() - started
    outcome = train(packed, epochs=epochs, clf_type="MLP", trainer="packed", seed=0, out_dir=run_dir)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "split_s": split_s, "pack_s": packed_s - split_s, "train_s": wall - packed_s,
            "accuracy": outcome.accuracy, "ref_accs": outcome.ref_accs, "epoch_seconds": outcome.epoch_seconds,
            "reused": packed.reused, "peak_rss_gb": _peak_rss_gb(), "rows": len(packed)}


def run_child(args: argparse.Namespace, kind: str, snapshot_id: str) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--workdir", str(args.workdir), "--epochs", str(args.epochs),
           "--snapshot", snapshot_id]
    if args.stock_blas_threads:
        cmd += ["--stock-blas-threads", str(args.stock_blas_threads)]
    print(f"running {kind} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"the {kind} child failed (exit {proc.returncode})")
    line = next(line for line in proc.stdout.splitlines() if line.startswith(_RESULT))
    return json.loads(line[len(_RESULT):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--classes", type=int, default=40, help="keep the N most frequent classes (20-50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-stock", action="store_true")
    parser.add_argument("--stock-blas-threads", type=int, default=None,
                        help="limit BLAS threads for the stock run (default: pyspacer's, i.e. OpenBLAS's own)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", choices=("stock", "ours-first", "ours-second"), help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workdir is None:
        args.workdir = DEFAULT_WORKDIR / str(args.annotations)
    args.workdir = args.workdir.resolve()

    if args.child:
        if args.child == "stock":
            result = child_stock(args.workdir, args.snapshot, args.epochs, args.stock_blas_threads)
        else:
            result = child_ours(args.workdir, args.snapshot, args.epochs, fresh=args.child == "ours-first")
        print(_RESULT + json.dumps(result), flush=True)
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    prep = prepare(args.workdir, args.annotations, args.seed, args.classes)
    sid = prep["snapshot_id"]
    stock = None if args.skip_stock else run_child(args, "stock", sid)
    first = run_child(args, "ours-first", sid)
    second = run_child(args, "ours-second", sid)

    counts = prep["class_counts"]
    table = [
        ("stock BLAS threads", str(args.stock_blas_threads or "OpenBLAS default"), ""),
        ("snapshot", f"{sid}: {prep['rows']:,} rows, {len(counts)} classes ({counts[0]:,} .. {counts[-1]:,})", ""),
        ("ours: rows packed", f"{first['rows']:,}", ""),
    ]
    if stock:
        table += [
            ("stock: wall s", f"{stock['wall_s']:.1f} (labels {stock['labels_s']:.1f})", ""),
            ("stock: peak RSS GB", f"{stock['peak_rss_gb']:.2f}", ""),
            ("stock: val accuracy", f"{stock['accuracy']:.4f}",
             "PASS" if 0.60 <= stock["accuracy"] <= 0.85 else "FAIL (want 0.60-0.85)"),
        ]
    for name, run in (("ours first", first), ("ours second", second)):
        table += [
            (f"{name}: wall s", (f"{run['wall_s']:.1f} (split {run['split_s']:.1f}, pack {run['pack_s']:.1f}, "
                                f"train {run['train_s']:.1f})"), ""),
            (f"{name}: peak RSS GB", f"{run['peak_rss_gb']:.2f}",
             "" if stock else ("PASS" if run["peak_rss_gb"] < 8 else "FAIL (budget 8 GB)")),
            (f"{name}: val accuracy", f"{run['accuracy']:.4f}", ""),
        ]
    if stock:
        speedup = stock["wall_s"] / first["wall_s"]
        rerun = stock["wall_s"] / second["wall_s"]
        delta = (first["accuracy"] - stock["accuracy"]) * 100
        table += [
            ("speedup (stock / ours first)", f"{speedup:.2f}x", "PASS" if speedup >= 3 else "FAIL (budget 3x)"),
            ("rerun speedup (stock / ours second)", f"{rerun:.2f}x", "PASS" if rerun >= 4 else "FAIL (budget 4x)"),
            ("accuracy delta (points)", f"{delta:+.2f}", "PASS" if abs(delta) <= 0.5 else "FAIL (budget 0.5)"),
        ]
    width = max(len(r[0]) for r in table)
    print(f"{'figure'.ljust(width)}  {'value':>60}  budget")
    for name, value, verdict in table:
        print(f"{name.ljust(width)}  {value:>60}  {verdict}")
    peak = max(first["peak_rss_gb"], second["peak_rss_gb"])
    if stock:
        print(f"speedup={speedup:.2f} rerun_speedup={rerun:.2f} accuracy_delta_pp={delta:+.2f} "
              f"stock_accuracy={stock['accuracy']:.4f} peak_rss_gb={peak:.2f}")
    else:
        print(f"speedup=nan rerun_speedup=nan accuracy_delta_pp=nan stock_accuracy=nan peak_rss_gb={peak:.2f}")


if __name__ == "__main__":
    main()
