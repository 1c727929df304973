"""The end-to-end demo on the embedded default (no network, no services).

demo sources (the bundled real MERMAID taxonomy) → ingest → a few queries → a starter recipe made by the
``mermaid-data spec`` commands → snapshot → the seed documentation's rollup and exclusion examples as
snapshots of the same lake → train from the snapshot ID with MLflow (a SQLite store in the workdir unless
``MLFLOW_TRACKING_URI`` is set) → a summary in words, ending with next steps that run as printed.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from mermaid_data import Lake
from mermaid_data.demo import generate_demo_sources
from mermaid_data.demo.generate import MANIFEST_FILE
from mermaid_data.ingest import ingest
from mermaid_data.progress import Progress, default_progress
from mermaid_data.snapshot import SnapshotSpec
from mermaid_data.specs import LabelSpec, label_spec, rollup_spec, source_spec
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
        FROM label_mapping_conflicts ORDER BY label_id, chosen DESC""",
}

#: The starter recipe: every BA rolled up to this depth of the MERMAID tree (families of hard corals,
#: genera of algae), growth forms dropped; then the classes with at least ``min_annotations`` kept.
ROLLUP_LEVEL = "depth 2"
#: Annotations a class needs to be kept, per annotation of the lake (100 on the small demo's 20,000).
MIN_ANNOTATIONS_SHARE = 0.005
MIN_ANNOTATIONS_FLOOR = 20

#: The seed documentation's rollup and exclusion examples (docs/training.md), as files people can pass.
SEED_ROLLUPS_CSV = """\
from_ba_id,from_ba_name,from_gf_id,from_gf_name,to_ba_id,to_ba_name,to_gf_id,to_gf_name
050c0689-0b01-4a6c-afbf-a5d3ca39c310,Acropora,cf2deca6-53b8-4096-916f-32c2c71d14bf,Branching,350e9eb4-5e6b-48f5-aeb8-0bfdf023bf1c,Hard coral,cf2deca6-53b8-4096-916f-32c2c71d14bf,Branching
2b55697f-f26e-433e-9070-f1fe9748bf7b,Porites,888609b5-b58a-4d57-addc-a6935bba284b,Massive,2b55697f-f26e-433e-9070-f1fe9748bf7b,Porites,,
"""
SEED_EXCLUSIONS_CSV = """\
ba_id,ba_name,gf_id,gf_name
050c0689-0b01-4a6c-afbf-a5d3ca39c310,Acropora,cf2deca6-53b8-4096-916f-32c2c71d14bf,Branching
31c5af16-30d7-4966-97f4-01889a5cf973,Other,,
"""


@dataclass(frozen=True)
class Recipe:
    """The demo's starter recipe: the spec CSVs written by the spec commands and what they keep."""

    sources_csv: Path
    rollups_csv: Path
    include_csv: Path
    sources: int
    rollup_rules: int
    min_annotations: int
    labels: LabelSpec

    def spec(self) -> SnapshotSpec:
        return SnapshotSpec(
            name="demo", message="make demo: the starter recipe of mermaid-data spec",
            coralnet_sources_csv=self.sources_csv, drop_growthforms=True,
            label_rollup_spec_csv=self.rollups_csv, included_labels_csv=self.include_csv,
        )


@dataclass(frozen=True)
class DemoResult:
    """What the demo made: the lake, the snapshots, the run and its headline figures."""

    lake: str
    snapshot_id: str
    seed_rollup_snapshot_id: str
    seed_exclusion_snapshot_id: str
    accuracy: float
    balanced_accuracy: float
    classes: int
    run_id: str | None
    tracking_uri: str | None
    model_uri: str | None
    next_steps: tuple[str, ...]


def run_demo(
    workdir: Path, *, scale: str = "small", seed: int = 0, epochs: int = 10, progress: Progress | None = None,
    console: Console | None = None,
) -> DemoResult:
    """Generate demo sources (once), ingest them into ``workdir/lake``, snapshot, train and summarize."""
    console = console or Console()
    progress = progress or default_progress()
    workdir = Path(workdir).resolve()
    lake = _lake(workdir, scale=scale, seed=seed, console=console, progress=progress)
    _queries(lake, console)
    recipe = _recipe(lake, workdir / "recipe")
    snapshot = lake.create_snapshot(recipe.spec(), progress=progress)
    from mermaid_data.cli import print_stage_counts

    print_stage_counts(snapshot.manifest)
    seed_rollups, seed_exclusions = _seed_snapshots(lake, workdir / "seed-examples", recipe)
    result = _train(workdir, lake, snapshot.snapshot_id, epochs=epochs, progress=progress)
    steps = _next_steps(workdir, lake, snapshot.snapshot_id, seed_rollups, seed_exclusions, result)
    _summary(console, lake, recipe, snapshot, result, seed_rollups, seed_exclusions, steps)
    return DemoResult(
        lake=str(lake), snapshot_id=snapshot.snapshot_id, seed_rollup_snapshot_id=seed_rollups.snapshot_id,
        seed_exclusion_snapshot_id=seed_exclusions.snapshot_id, accuracy=result.headline["accuracy"],
        balanced_accuracy=result.headline["balanced_accuracy"], classes=len(result.classes),
        run_id=result.run_id, tracking_uri=result.tracking_uri, model_uri=result.model_uri, next_steps=steps,
    )


# ----------------------------------------------------------------------------------------------------
# sources → lake → queries
# ----------------------------------------------------------------------------------------------------


def _lake(workdir: Path, *, scale: str, seed: int, console: Console, progress: Progress) -> Lake:
    """Demo sources (written once per scale and seed) ingested into ``workdir/lake``."""
    import json

    sources = workdir / "sources"
    marker = sources / MANIFEST_FILE
    existing = json.loads(marker.read_text()) if marker.is_file() else {}
    wanted = {"scale": scale, "seed": seed, "complete": True, "benthic_attributes": 738}
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
    return lake


def _queries(lake: Lake, console: Console) -> None:
    for title, query in DEMO_QUERIES.items():
        frame = lake.sql(query)
        table = Table(title=title)
        for name in frame.columns:
            table.add_column(name)
        for row in frame.iter_rows():
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)


def _drop_stale_lake(lake: Lake, path: Path, sources: Path, console: Console) -> None:
    """A demo lake whose sources point elsewhere (another folder, or an older layout of ``root_uri``)
    cannot find its feature files; the demo lake is disposable, so it is rebuilt from the sources."""
    if not lake.exists():
        return
    try:
        roots = lake.sql("SELECT site, root_uri FROM sources WHERE site IN ('mermaid', 'coralnet')")
        bas = lake.sql("SELECT count(*) FROM benthic_attributes").item()
    except Exception:  # noqa: BLE001 - unreadable: rebuild
        roots, bas = None, 0
    expected = {"mermaid": str(sources / "mermaid"), "coralnet": str(sources / "coralnet")}
    if roots is not None and bas == 738 and all(expected.get(site) == root for site, root in roots.iter_rows()):
        return
    console.print(f"[yellow]note:[/] the demo lake at {path} was built by an older version or from other "
                  "sources; rebuilding it", highlight=False)
    shutil.rmtree(path)


# ----------------------------------------------------------------------------------------------------
# recipe → snapshots
# ----------------------------------------------------------------------------------------------------


def _recipe(lake: Lake, folder: Path) -> Recipe:
    """The starter recipe, written by the same functions as ``mermaid-data spec sources/rollups/labels``."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = source_spec(lake, min_images=1)
    sources_csv = sources.write(folder / "sources.csv")
    rollups = rollup_spec(lake, ROLLUP_LEVEL, drop_growthforms=True)
    rollups_csv = rollups.write(folder / "rollups.csv")
    total = lake.sql("SELECT count(*) FROM annotations").item()
    min_annotations = max(MIN_ANNOTATIONS_FLOOR, round(total * MIN_ANNOTATIONS_SHARE))
    labels = label_spec(lake, min_annotations=min_annotations, rollups_csv=rollups_csv, drop_growthforms=True,
                        coralnet_sources_csv=sources_csv)
    include_csv = labels.write(folder / "include.csv")
    return Recipe(sources_csv=sources_csv, rollups_csv=rollups_csv, include_csv=include_csv,
                  sources=sources.rows, rollup_rules=rollups.rows, min_annotations=min_annotations, labels=labels)


def _seed_snapshots(lake: Lake, folder: Path, recipe: Recipe):
    """The seed documentation's rollup and exclusion examples, verbatim, as snapshots of the demo lake."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "coral_rollups.csv").write_text(SEED_ROLLUPS_CSV, encoding="utf-8")
    (folder / "exclusions.csv").write_text(SEED_EXCLUSIONS_CSV, encoding="utf-8")
    rollups = lake.create_snapshot(SnapshotSpec(
        name="seed-rollups", message="the seed documentation's rollup example",
        coralnet_sources_csv=recipe.sources_csv, label_rollup_spec_csv=folder / "coral_rollups.csv"))
    exclusions = lake.create_snapshot(SnapshotSpec(
        name="seed-exclusions", message="the seed documentation's exclusion example",
        coralnet_sources_csv=recipe.sources_csv, excluded_labels_csv=folder / "exclusions.csv"))
    return rollups, exclusions


# ----------------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------
# summary
# ----------------------------------------------------------------------------------------------------


def _shown(path: Path | str) -> str:
    """A path as people type it from here: relative to the current folder when below it."""
    path = Path(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _next_steps(workdir: Path, lake: Lake, snapshot_id: str, seed_rollups, seed_exclusions, result) -> tuple[str, ...]:
    """Commands that work from the current folder as printed (paths shown relative to it)."""
    lake_arg = shlex.quote(_shown(str(lake)))
    seed = workdir / "seed-examples"
    q = shlex.quote
    steps = [
        f"uv run mermaid-data sql \"SELECT site, count(*) AS n FROM snapshot('{snapshot_id}') GROUP BY site ORDER BY site\" --lake {lake_arg}",
        f"uv run mermaid-data snapshot show {snapshot_id} --lake {lake_arg}",
        f"uv run mermaid-data snapshot diff {seed_rollups.snapshot_id} {seed_exclusions.snapshot_id} --lake {lake_arg}",
        (f"uv run mermaid-data snapshot create --lake {lake_arg} --coralnet-sources {q(_shown(workdir / 'recipe' / 'sources.csv'))} "
         f"--rollups {q(_shown(seed / 'coral_rollups.csv'))} --exclude {q(_shown(seed / 'exclusions.csv'))} --name seed-both"),
        (f"uv run mermaid-data spec labels --min-annotations 50 --rollups {q(_shown(workdir / 'recipe' / 'rollups.csv'))} "
         f"--drop-growthforms --coralnet-sources {q(_shown(workdir / 'recipe' / 'sources.csv'))} --lake {lake_arg}"),
        f"uv run mermaid-train run --snapshot {snapshot_id} --lake {lake_arg} --epochs 5 --no-mlflow --runs-dir {q(_shown(workdir / 'runs'))}",
    ]
    if result.tracking_uri and result.tracking_uri.startswith("sqlite:"):
        steps.append(f"uv run mlflow ui --backend-store-uri {q(result.tracking_uri)}")
    return tuple(steps)


def _summary(console: Console, lake: Lake, recipe: Recipe, snapshot, result, seed_rollups, seed_exclusions,
             steps: tuple[str, ...]) -> None:
    h = result.headline
    counts = result.counts
    labels = recipe.labels
    few, few_rows = labels.dropped_for("fewer_annotations")
    stages = {row["reason"]: row["dropped"] for row in snapshot.manifest["stage_counts"]}
    rows_in = snapshot.manifest["stage_counts"][0]["remaining"]

    def print_line(text: str = "") -> None:
        console.print(text, highlight=False, soft_wrap=True)

    print_line()
    print_line("[bold]Demo summary[/]")
    print_line(f"  lake          {_shown(str(lake))}: {rows_in:,} annotations (MERMAID and {recipe.sources} CoralNet sources)")
    print_line(f"  recipe        every benthic attribute rolled up to {ROLLUP_LEVEL} of the MERMAID tree (families of "
               f"hard corals, genera of algae; {recipe.rollup_rules:,} rules), growth forms dropped; classes with at "
               f"least {recipe.min_annotations:,} annotations included (files in {_shown(recipe.include_csv.parent)})")
    print_line(f"  kept          {labels.classes_kept} classes, {labels.annotations_kept:,} annotations")
    if few:
        print_line(f"  dropped       {few} classes: fewer than {recipe.min_annotations:,} annotations after the rollup "
                   f"({few_rows:,} annotations)")
    print_line(f"                {stages.get('unmapped_label', 0):,} annotations: CoralNet label not in MERMAID's mapping; "
               f"{stages.get('missing_features', 0):,}: no feature vector")
    print_line(f"  snapshot      {snapshot.snapshot_id}: {snapshot.manifest['row_count']:,} annotations; train "
               f"{counts['train']:,} / ref {counts['ref']:,} / val {counts['val']:,}")
    if result.dropped_classes:
        print_line(f"                {len(result.dropped_classes)} classes dropped by the trainer: not in both train "
                   f"and ref ({sum(result.dropped_classes.values()):,} annotations)")
    print_line(f"  model         {len(result.classes)} classes: accuracy {h['accuracy']:.3f}, balanced accuracy "
               f"{h['balanced_accuracy']:.3f}, macro F1 {h['macro_f1']:.3f} (val set, {counts['val']:,} annotations)")
    print_line(f"  seed examples {seed_rollups.snapshot_id} (rollups: Acropora::Branching → Hard coral::Branching, "
               f"Porites::Massive → Porites) and {seed_exclusions.snapshot_id} (Acropora::Branching and Other excluded)")
    if result.run_id:
        print_line(f"  MLflow run    {result.run_id} (experiment 'mermaid-demo') in {result.tracking_uri}")
        print_line(f"  model URI     {result.model_uri} (sklearn flavor); pyspacer classifier {result.classifier_uri}")
    if result.run_url:
        print_line(f"  open          {result.run_url}")
    print_line()
    print_line("Next steps (from this folder):")
    for step in steps:
        print_line(f"  {step}")
