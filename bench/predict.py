"""Predict benchmark: ``mermaid-train predict`` on a snapshot against pyspacer's stock per-image path.

    uv run --frozen python bench/predict.py --annotations 100000 [--epochs 3] [--workdir DIR]

1. Demo sources of N annotations *with* feature files (1280-d pyspacer ImageFeatures) are generated and
   ingested into ``DIR/lake``; one snapshot of every annotation (MERMAID plus every CoralNet source) is
   created, and one classifier is trained on it (preset ``pyspacer``, ``--epochs``). This preparation is
   reused by later runs with the same arguments and is not what is measured.
2. Measured, in this order, in this process, on the same points and the same classifier file:

   - ``ours (cold cache)``: ``predict(classifier.pkl, snapshot=ID)`` with an empty feature cache (every
     file copied into it), writing Parquet, top 3 classes with names, ``min_confidence=0.5``;
   - ``ours (warm cache)``: the same again, the cache kept (what a second predict on these files costs);
   - ``stock classify_features``: pyspacer's ``spacer.tasks.classify_features`` once per image (one
     ``ClassifyFeaturesMsg`` per feature file, the classifier loaded once: pyspacer caches it), the
     baseline. It calls ``predict_proba`` once per *point*, so it runs on the first files that hold
     ``--stock-points`` points (default 10,000) and its points per second stand for the whole set;
   - ``sklearn predict_proba only``: scikit-learn's ``classifier.predict_proba`` on every point's vector
     already in memory (float32, one call per 16,384 points): no reading, ranking, names or writing
     (ours scores through ``ranking.fast_proba``, the same numbers without the per-class calibrator calls).

   Each stock result is checked against ours (same top class for every point).
3. A table (wall seconds, points per second, speed-up over stock's points per second) and, as the last
   line::

    predict points=<n> files=<n> ours_warm_s=<s> ours_cold_s=<s> stock_points_per_s=<n> proba_s=<s> speedup_vs_stock=<x>

Budget (issue 12): 100k points predicted in seconds, faster than the stock path. Missed budgets are
reported (exit status 0).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

DEFAULT_WORKDIR = Path(__file__).resolve().parent / "out" / "predict"
BUDGET_S = 10.0  # "100k points predicted in seconds"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} / {five:.2f} (1 / 5 min)"


# ----------------------------------------------------------------------------------------------------
# preparation (not measured)
# ----------------------------------------------------------------------------------------------------


def prepare(workdir: Path, annotations: int, seed: int, epochs: int) -> dict:
    """Demo sources with features -> lake -> one snapshot -> one classifier; returns what was prepared."""
    from mermaid_data import Lake
    from mermaid_data.demo import generate_demo_sources
    from mermaid_data.ingest import ingest
    from mermaid_data.snapshot import SnapshotSpec
    from mermaid_train import TrainingOptions, TrainingRunner

    marker = workdir / "prepared.json"
    wanted = {"annotations": annotations, "seed": seed, "epochs": epochs, "format": 1}
    if marker.is_file():
        done = json.loads(marker.read_text())
        if {k: done.get(k) for k in wanted} == wanted and Path(done["classifier"]).is_file():
            return done
    for name in ("sources", "lake", "recipe", "runs", "train-cache"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    marker.unlink(missing_ok=True)
    started = time.perf_counter()
    sources = workdir / "sources"
    print(f"generating {annotations:,} annotations with features ...", file=sys.stderr, flush=True)
    generate_demo_sources(sources, annotations=annotations, seed=seed, features=True)
    lake = Lake.open(str(workdir / "lake"))
    print("ingesting ...", file=sys.stderr, flush=True)
    ingest(lake, mermaid_uri=str(sources / "mermaid" / "mermaid_confirmed_annotations.parquet"),
           coralnet_uri=str(sources / "coralnet"), api=str(sources / "api"))
    recipe = workdir / "recipe"
    recipe.mkdir(exist_ok=True)
    source_ids = lake.sql("SELECT DISTINCT source_id FROM annotations_stored WHERE site = 'coralnet'")["source_id"]
    (recipe / "sources.csv").write_text("id\n" + "".join(f"{s}\n" for s in sorted(source_ids.to_list(), key=int)))
    print("creating the snapshot ...", file=sys.stderr, flush=True)
    snap = lake.create_snapshot(SnapshotSpec(coralnet_sources_csv=recipe / "sources.csv", name="bench-predict"))
    print("training the classifier ...", file=sys.stderr, flush=True)
    runner = TrainingRunner(snapshot_id=snap.snapshot_id, lake=str(lake.uri),
                            training_options=TrainingOptions(preset="pyspacer", epochs=epochs),
                            runs_dir=workdir / "runs", cache_dir=workdir / "train-cache")
    runner.run()
    done = {**wanted, "snapshot_id": snap.snapshot_id, "rows": snap.manifest["row_count"],
            "classifier": str(Path(runner.result.out_dir) / "classifier.pkl"),
            "prepare_s": round(time.perf_counter() - started, 1)}
    marker.write_text(json.dumps(done, indent=2))
    return done


# ----------------------------------------------------------------------------------------------------
# measured
# ----------------------------------------------------------------------------------------------------


def measure_ours(workdir: Path, prepared: dict, *, fresh: bool) -> dict:
    from mermaid_train.predict import predict

    cache = workdir / "predict-cache"
    if fresh:
        shutil.rmtree(cache, ignore_errors=True)
    out = workdir / "predictions.parquet"
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    result = predict(prepared["classifier"], snapshot=prepared["snapshot_id"], lake=str(workdir / "lake"),
                     output=out, top_k=3, min_confidence=0.5, cache_dir=cache)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "points": result.points, "files": result.files, "seconds": result.seconds,
            "output": str(out)}


def _images(workdir: Path, snapshot_id: str):
    """The snapshot's points: ``feature_uri, site, source_id, image_id, row, col``."""
    from mermaid_data import Lake
    from mermaid_train.features.pack import feature_uris
    from mermaid_train.split import load_snapshot_rows

    lake = Lake.open(str(workdir / "lake"))
    _sid, _manifest, rows = load_snapshot_rows(lake, snapshot_id)
    return feature_uris(lake, rows).select("feature_uri", "site", "source_id", "image_id", "row", "col")


def measure_stock(prepared: dict, points, max_points: int) -> dict:
    """pyspacer's ``classify_features`` per feature file, over the first files holding ``max_points`` points."""
    from spacer.data_classes import DataLocation
    from spacer.messages import ClassifyFeaturesMsg
    from spacer.tasks import classify_features

    classifier = DataLocation("filesystem", prepared["classifier"])
    per_file = points.group_by("feature_uri", maintain_order=True).len()
    within = per_file["len"].cum_sum().shift(1, fill_value=0) < max_points
    files = per_file.filter(within)["feature_uri"].to_list()
    classify_features(ClassifyFeaturesMsg(job_token="bench-warm", feature_loc=DataLocation("filesystem", files[0]),
                                          classifier_loc=classifier))  # pyspacer loads and caches the classifier
    started = time.perf_counter()
    best: dict[str, list] = {}
    for i, uri in enumerate(files):
        msg = ClassifyFeaturesMsg(job_token=f"bench-{i}", feature_loc=DataLocation("filesystem", uri),
                                  classifier_loc=classifier)
        result = classify_features(msg)
        best[uri] = [(r, c, result.classes[max(range(len(s)), key=s.__getitem__)]) for r, c, s in result.scores]
    wall = time.perf_counter() - started
    return {"wall_s": wall, "files": len(files), "points": sum(len(v) for v in best.values()), "best": best}


def measure_proba(prepared: dict, points) -> dict:
    """``predict_proba`` alone on every snapshot point's vector (read before the clock starts)."""
    import numpy as np
    from mermaid_train.features.npz import read_points
    from mermaid_train.model import ranking
    from mermaid_train.model.export import load_classifier

    classifier = load_classifier(prepared["classifier"])
    parts = []
    for (uri,), group in points.group_by("feature_uri", maintain_order=True):
        parts.append(read_points(Path(uri), uri, group["row"].to_numpy(), group["col"].to_numpy()))
    x = np.concatenate(parts)
    started = time.perf_counter()
    ranking.predict_proba(classifier, x, strict=True)  # scikit-learn's own predict_proba, 16,384 rows a call
    return {"wall_s": time.perf_counter() - started, "points": len(x)}


def check_agreement(ours_output: str, stock: dict, points) -> tuple[int, int]:
    """``(points where stock's top class equals ours, points compared)``, matched by image and (row, col)."""
    import polars as pl

    key = ["site", "source_id", "image_id", "row", "col"]
    ours = pl.read_parquet(ours_output).select(*key, "top1_class_key").unique(key)
    theirs = pl.DataFrame([(uri, r, c, k) for uri, found in stock["best"].items() for r, c, k in found],
                          schema={"feature_uri": pl.String, "row": pl.Int64, "col": pl.Int64, "stock": pl.String},
                          orient="row").unique(["feature_uri", "row", "col"])
    images = points.select("feature_uri", "site", "source_id", "image_id").unique("feature_uri")
    joined = (theirs.join(images, on="feature_uri")
              .join(ours.with_columns(pl.col("row").cast(pl.Int64), pl.col("col").cast(pl.Int64)),
                    on=key, how="inner"))
    return int((joined["stock"] == joined["top1_class_key"]).sum()), joined.height


# ----------------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=int, default=100_000, help="demo annotations (points to predict)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the classifier (not measured)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stock-points", type=int, default=10_000,
                        help="points of the stock per-image baseline (the first files that hold them)")
    parser.add_argument("--skip-stock", action="store_true", help="leave out the stock per-image baseline")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)

    prepared = prepare(args.workdir, args.annotations, args.seed, args.epochs)
    print(f"prepared: snapshot {prepared['snapshot_id']} ({prepared['rows']:,} points), "
          f"classifier {prepared['classifier']} (prepare {prepared.get('prepare_s', 0)} s)", flush=True)
    points = _images(args.workdir, prepared["snapshot_id"])

    print(f"measuring ({_load()}) ...", file=sys.stderr, flush=True)
    cold = measure_ours(args.workdir, prepared, fresh=True)
    warm = measure_ours(args.workdir, prepared, fresh=False)
    stock = None if args.skip_stock else measure_stock(prepared, points, args.stock_points)
    proba = measure_proba(prepared, points)
    agree = check_agreement(warm["output"], stock, points) if stock else None

    n = warm["points"]
    rows = [("ours (cold cache)", cold["wall_s"], n, cold["files"]), ("ours (warm cache)", warm["wall_s"], n, warm["files"])]
    if stock:
        rows.append(("stock classify_features", stock["wall_s"], stock["points"], stock["files"]))
    rows.append(("sklearn predict_proba only", proba["wall_s"], proba["points"], 0))
    stock_rate = stock["points"] / stock["wall_s"] if stock else None
    print()
    print(f"{n:,} points, {warm['files']:,} feature files; {_load()}; {os.cpu_count()} cores")
    print(f"{'path':<27} {'points':>9} {'files':>7} {'wall s':>8} {'points/s':>11} {'vs stock':>9}")
    for name, wall, points_n, files_n in rows:
        versus = f"{points_n / wall / stock_rate:8.1f}x" if stock_rate else "        -"
        print(f"{name:<27} {points_n:9,} {files_n:7,} {wall:8.2f} {points_n / wall:11,.0f} {versus}")
    if stock_rate:
        print(f"stock at {n:,} points (its rate): {n / stock_rate:,.0f} s")
    s = warm["seconds"]
    print(f"ours (warm) by stage, s: model {s['load_model']:.2f}, points {s['points']:.2f}, fetch {s['fetch']:.2f}, "
          f"features + classify {s['features_and_classify']:.2f}, write {s['write']:.2f}")
    if agree:
        print(f"stock's top class equals ours on {agree[0]:,} of {agree[1]:,} points")
    verdict = "PASS" if warm["wall_s"] <= BUDGET_S and (not stock_rate or n / warm["wall_s"] > stock_rate) else "FAIL"
    print(f"budget: {n:,} points in <= {BUDGET_S:g} s and faster than stock: {verdict}")
    speedup = warm["points"] / warm["wall_s"] / stock_rate if stock_rate else float("nan")
    print(f"predict points={n} files={warm['files']} ours_warm_s={warm['wall_s']:.2f} ours_cold_s={cold['wall_s']:.2f} "
          f"stock_points_per_s={stock_rate or float('nan'):.0f} proba_s={proba['wall_s']:.2f} "
          f"speedup_vs_stock={speedup:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
