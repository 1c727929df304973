"""The end-to-end demo on the embedded default (no network, no services).

demo sources → ingest → queries → snapshot → train from the snapshot ID with MLflow (a SQLite store in the
workdir unless ``MLFLOW_TRACKING_URI`` is set) → a summary saying where the run and the model are.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from mermaid_data import Lake
from mermaid_data.demo import generate_demo_sources
from mermaid_data.ingest import ingest
from mermaid_data.progress import Progress, default_progress
from rich.console import Console
from rich.table import Table

DEMO_QUERIES = {
    "annotations per site": """
        SELECT site, count(*) AS annotations, count(DISTINCT source_id) AS sources,
               count(DISTINCT image_id) AS images
        FROM annotations GROUP BY site ORDER BY site""",
    "top 10 labels after mapping (both sites)": """
        SELECT b.name AS benthic_attribute, coalesce(g.name, '') AS growth_form, count(*) AS n
        FROM annotations_mapped AS a
        JOIN benthic_attributes AS b ON b.id = a.benthic_attribute_id
        LEFT JOIN growth_forms AS g ON g.id = a.growth_form_id
        GROUP BY ALL ORDER BY n DESC, benthic_attribute, growth_form LIMIT 10""",
    "unmapped CoralNet labels": """
        SELECT label_id, count(*) AS annotations, count(DISTINCT source_id) AS sources
        FROM unmapped_annotations GROUP BY label_id ORDER BY annotations DESC, label_id LIMIT 5""",
    "label ids the mapping lists twice (resolution rule applied)": """
        SELECT label_id, provider_label, benthic_attribute_id, growth_form_id, chosen
        FROM label_mapping_conflicts""",
}


def run_demo(
    workdir: Path, *, scale: str = "small", seed: int = 0, epochs: int = 10, progress: Progress | None = None
) -> dict:
    """Generate demo sources (once), ingest them into ``workdir/lake``, snapshot, train and summarize."""
    console = Console()
    progress = progress or default_progress()
    workdir = Path(workdir).resolve()
    sources = workdir / "sources"
    marker = sources / ".mermaid-demo.json"
    wanted = {"scale": scale, "seed": seed}
    existing = json.loads(marker.read_text()) if marker.is_file() else {}
    if {k: existing.get(k) for k in wanted} != wanted:
        with progress.task(f"demo sources ({scale}, seed {seed}) → {sources}"):
            generate_demo_sources(sources, scale=scale, seed=seed, features=True)
    lake = Lake.open(str(workdir / "lake"))
    _drop_stale_lake(lake, workdir / "lake", sources, console)
    report = ingest(
        lake,
        mermaid_uri=str(sources / "mermaid" / "mermaid_confirmed_annotations.parquet"),
        coralnet_uri=str(sources / "coralnet"),
        api=str(sources / "api"),
        progress=progress,
    )
    from mermaid_data.cli import print_report

    print_report(report, lake)
    for title, query in DEMO_QUERIES.items():
        frame = lake.sql(query)
        table = Table(title=title)
        for name in frame.columns:
            table.add_column(name)
        for row in frame.iter_rows():
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
    from mermaid_data.cli import print_stage_counts
    from mermaid_data.snapshot import SnapshotSpec

    snapshot = lake.create_snapshot(
        SnapshotSpec(name="demo", message="make demo: MERMAID + every demo CoralNet source",
                     coralnet_sources_csv=_all_sources_csv(lake, workdir)),
        progress=progress,
    )
    print_stage_counts(snapshot.manifest)
    verb = "created" if snapshot.created else "exists (same recipe, nothing written)"
    console.print(f"snapshot {snapshot.snapshot_id} {verb}: {snapshot.manifest['row_count']:,} rows, "
                  f"content_sha256 {snapshot.manifest['content_sha256'][:16]}…")
    result = _train(workdir, lake, snapshot.snapshot_id, epochs=epochs, progress=progress)
    _summary(console, lake, snapshot, result)
    return {"lake": str(lake), "summary": report.summary, "snapshot_id": snapshot.snapshot_id,
            "accuracy": result.headline["accuracy"], "balanced_accuracy": result.headline["balanced_accuracy"],
            "run_id": result.run_id, "tracking_uri": result.tracking_uri, "model_uri": result.model_uri}


def _train(workdir: Path, lake: Lake, snapshot_id: str, *, epochs: int, progress: Progress):
    """Train from the snapshot ID, tracked in MLflow (MLFLOW_TRACKING_URI, else workdir/mlflow.db)."""
    from mermaid_train.options import MLflowOptions, TrainingOptions
    from mermaid_train.output import print_result
    from mermaid_train.runner import MLflowTrainingRunner
    from mermaid_train.tracking.mlflow import default_tracking_uri

    runner = MLflowTrainingRunner(
        training_options=TrainingOptions(epochs=epochs),
        mlflow_options=MLflowOptions(
            experiment_name="mermaid-demo", model_name="mermaid-demo-model",
            tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(workdir),
        ),
        snapshot_id=snapshot_id, lake=str(lake), cache_dir=workdir / "cache", progress=progress,
    )
    runner.run()
    print_result(runner.result)
    return runner.result


def _summary(console: Console, lake: Lake, snapshot, result) -> None:
    h = result.headline
    counts = result.counts
    lines = [
        "",
        "[bold]Demo summary[/]",
        (f"  snapshot      {snapshot.snapshot_id}: {snapshot.manifest['row_count']:,} annotations; train "
         f"{counts['train']:,} / ref {counts['ref']:,} / val {counts['val']:,}, {len(result.classes)} classes"),
        (f"  accuracy      {h['accuracy']:.3f} (val)     balanced accuracy {h['balanced_accuracy']:.3f}     "
         f"macro F1 {h['macro_f1']:.3f}"),
        f"  MLflow run    {result.run_id} (experiment 'mermaid-demo') in {result.tracking_uri}",
        f"  model         {result.model_uri} (sklearn flavor); pyspacer classifier file {result.classifier_uri}",
    ]
    if result.run_url:
        lines.append(f"  open          {result.run_url}")
    else:
        lines.append(f"  MLflow UI     uv run mlflow ui --backend-store-uri {result.tracking_uri}   "
                     "then open http://127.0.0.1:5000")
    lines += [
        "",
        f"Lake at {lake}. Try:",
        f"  uv run mermaid-data snapshot show {snapshot.snapshot_id} --lake {lake}",
        (f"  uv run mermaid-data sql \"SELECT site, count(*) FROM snapshot('{snapshot.snapshot_id}') GROUP BY site\" "
         f"--lake {lake}"),
        (f"  MLFLOW_TRACKING_URI={result.tracking_uri} uv run mermaid-train run --snapshot {snapshot.snapshot_id} "
         f"--lake {lake} --epochs 5 --split points"),
        f"  MLFLOW_TRACKING_URI={result.tracking_uri} uv run mermaid-train compare {result.run_id} <another run id>",
    ]
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


def _drop_stale_lake(lake: Lake, path: Path, sources: Path, console: Console) -> None:
    """A demo lake whose sources point elsewhere (another folder, or an older layout of ``root_uri``)
    cannot find its feature files; the demo lake is disposable, so it is rebuilt from the sources."""
    if not lake.exists():
        return
    try:
        roots = lake.sql("SELECT site, root_uri FROM sources WHERE site IN ('mermaid', 'coralnet')")
    except Exception:  # noqa: BLE001 - unreadable: rebuild
        roots = None
    expected = {"mermaid": str(sources / "mermaid"), "coralnet": str(sources / "coralnet")}
    if roots is not None and all(expected.get(site) == root for site, root in roots.iter_rows()):
        return
    console.print(f"[yellow]note:[/] the demo lake at {path} was built by an older version or from other "
                  "sources; rebuilding it", highlight=False)
    shutil.rmtree(path)


def _all_sources_csv(lake: Lake, workdir: Path) -> Path:
    """A sources CSV listing every CoralNet source in the lake (the demo keeps them all)."""
    ids = lake.sql("SELECT DISTINCT source_id FROM annotations WHERE site = 'coralnet' ORDER BY CAST(source_id AS INT)")
    path = workdir / "demo_sources.csv"
    path.write_text("id\n" + "".join(f"{s}\n" for s in ids["source_id"].to_list()))
    return path
