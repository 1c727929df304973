"""The end-to-end demo on the embedded default: demo sources → ingest → queries (no network)."""

from __future__ import annotations

import json
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


def run_demo(workdir: Path, *, scale: str = "small", seed: int = 0, progress: Progress | None = None) -> dict:
    """Generate demo sources (once), ingest them into ``workdir/lake`` and print a few queries."""
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
    console.print(
        f"\nLake at {lake}. Try:\n"
        f"  uv run mermaid-data snapshot show {snapshot.snapshot_id} --lake {lake}\n"
        f"  uv run mermaid-data snapshot rebuild {snapshot.snapshot_id} --lake {lake}\n"
        f"  uv run mermaid-data sql \"SELECT site, count(*) FROM annotations_mapped GROUP BY site\" --lake {lake}\n"
        f"  uv run mermaid-data history --lake {lake}"
    )
    return {"lake": str(lake), "summary": report.summary, "snapshot_id": snapshot.snapshot_id}


def _all_sources_csv(lake: Lake, workdir: Path) -> Path:
    """A sources CSV listing every CoralNet source in the lake (the demo keeps them all)."""
    ids = lake.sql("SELECT DISTINCT source_id FROM annotations WHERE site = 'coralnet' ORDER BY CAST(source_id AS INT)")
    path = workdir / "demo_sources.csv"
    path.write_text("id\n" + "".join(f"{s}\n" for s in ids["source_id"].to_list()))
    return path
