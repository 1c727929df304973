"""``mermaid-data``: ingest sources into the lake, query it with SQL, inspect its history."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from mermaid_data.errors import MermaidDataError, SourceFormatError
from mermaid_data.lake import Lake
from mermaid_data.progress import default_progress
from mermaid_data.settings import get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
console = Console()
err = Console(stderr=True)


def user_errors(fn):
    """Print MermaidDataError as one line (no stack trace) and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MermaidDataError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


LakeOpt = Annotated[str | None, typer.Option("--lake", help="Lake URI (default: MERMAID_LAKE_URI or ./lake)")]


def read_sources_csv(path: Path) -> list[str]:
    """CoralNet source ids from a CSV with an ``id`` column (extra columns ignored)."""
    import csv

    from mermaid_data.sources.coralnet import parse_source_ids

    where = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SourceFormatError(f"cannot read ({exc.strerror})", where=where, fix="check the path") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise SourceFormatError("empty file", where=where, fix="write a header line 'id' then one id per line")
    header = [h.strip().lower() for h in rows[0]]
    if "id" not in header:
        raise SourceFormatError(
            f"no 'id' column (header: {rows[0]})", where=where, row=1, column="id",
            fix="name the column of CoralNet source ids 'id'",
        )
    index = header.index("id")
    return parse_source_ids([r[index] if len(r) > index else "" for r in rows[1:]], where=where)


@app.command()
@user_errors
def ingest(
    lake: LakeOpt = None,
    mermaid: Annotated[str | None, typer.Option(help="URI of mermaid_confirmed_annotations.parquet; 'none' skips MERMAID")] = None,
    coralnet: Annotated[str | None, typer.Option(help="Root URI holding s<id>/annotations.csv")] = None,
    coralnet_sources: Annotated[Path | None, typer.Option("--coralnet-sources", help="CSV with an 'id' column: only these sources")] = None,
    api: Annotated[str | None, typer.Option(help="MERMAID API base URL, a local directory of pages, 'bundled' (the taxonomy shipped with mermaid-data) or 'none' (skip)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan with row counts; write nothing")] = False,
) -> None:
    """Materialize MERMAID and CoralNet annotations and the MERMAID taxonomy into the lake."""
    from mermaid_data.ingest import ingest as run_ingest

    settings = get_settings()
    mermaid_uri = settings.annotations_uri if mermaid is None else (None if mermaid.lower() == "none" else mermaid)
    coralnet_uri = coralnet if coralnet is not None else settings.coralnet_root_uri
    api_uri = settings.api_url if api is None else (None if api.lower() == "none" else api)
    only = read_sources_csv(coralnet_sources) if coralnet_sources else None
    the_lake = Lake.open(lake)
    report = run_ingest(
        the_lake, mermaid_uri=mermaid_uri, coralnet_uri=coralnet_uri, coralnet_sources=only,
        api=api_uri, dry_run=dry_run, progress=default_progress(),
    )
    print_report(report, the_lake)


def print_report(report, lake: Lake) -> None:
    plan = Table(title="dry run: plan" if report.dry_run else "sources", show_lines=False)
    for col in ("site", "source", "action", "rows", "uri"):
        plan.add_column(col, justify="right" if col == "rows" else "left")
    changed = report.changed
    shown = changed[:40]
    for p in shown:
        plan.add_row(str(p.site), p.source_id, p.action, "" if p.rows is None else f"{p.rows:,}", p.uri)
    unchanged = len(report.plan) - len(changed)
    console.print(plan)
    extra = f" (+{len(changed) - len(shown)} more changed)" if len(changed) > len(shown) else ""
    console.print(f"{len(changed)} source(s) to write{extra}, {unchanged} unchanged; taxonomy: {report.taxonomy_action}")
    if report.dry_run:
        console.print("dry run: nothing was written")
        return
    if report.versions_written:
        console.print("versions written: " + ", ".join(f"{k}@v{v}" for k, v in sorted(report.versions_written.items())))
    else:
        console.print("nothing changed: no new table versions")
    if report.summary:
        summary = Table(title=f"lake {lake}")
        summary.add_column("figure")
        summary.add_column("value", justify="right")
        for key, value in report.summary.items():
            summary.add_row(key.replace("_", " "), f"{value:,}")
        console.print(summary)


@app.command()
@user_errors
def sql(
    query: Annotated[str, typer.Argument(help="A DuckDB SQL query over the lake's views")],
    lake: LakeOpt = None,
    format: Annotated[str, typer.Option("--format", help="table|csv|json|parquet")] = "table",
    output: Annotated[Path | None, typer.Option("--output", help="Write to this file instead of stdout")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="annotations Delta version (others as of its time) or an ISO time")] = None,
) -> None:
    """Run SQL over views of every lake table plus annotations_mapped."""
    from mermaid_data.errors import ConfigError

    if format not in ("table", "csv", "json", "parquet"):
        raise ConfigError(f"unknown --format {format!r}", fix="use table, csv, json or parquet")
    if format == "parquet" and output is None:
        raise ConfigError("--format parquet needs --output FILE", fix="add --output result.parquet")
    frame = Lake.open(lake).sql(query, as_of=as_of)
    write_frame(frame, format, output)


def write_frame(frame: pl.DataFrame, format: str, output: Path | None) -> None:
    if format == "parquet":
        frame.write_parquet(output)
    elif format == "csv":
        text = frame.write_csv()
        output.write_text(text) if output else sys.stdout.write(text)
    elif format == "json":
        text = frame.write_json()
        output.write_text(text) if output else sys.stdout.write(text + "\n")
    else:
        table = Table(show_lines=False)
        for name in frame.columns:
            table.add_column(name)
        for row in frame.head(200).iter_rows():
            table.add_row(*("" if v is None else str(v) for v in row))
        target = Console(file=output.open("w")) if output else console
        target.print(table)
        if frame.height > 200:
            target.print(f"... {frame.height - 200:,} more rows (use --format csv --output FILE for all)")


@app.command()
@user_errors
def history(lake: LakeOpt = None, table: Annotated[str | None, typer.Option(help="Only this table")] = None) -> None:
    """List each table's Delta versions: time, operation, rows added/removed, which sources."""
    the_lake = Lake.open(lake)
    the_lake.require()
    frame = the_lake.history()
    if table:
        frame = frame.filter(pl.col("table") == table)
    write_frame(frame.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%d %H:%M:%S")), "table", None)


@app.command("demo-sources")
@user_errors
def demo_sources(
    dest: Annotated[Path, typer.Argument(help="Folder to write mermaid/, coralnet/ and api/ into")],
    scale: Annotated[str, typer.Option(help="tiny|small|medium|large")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes")] = 0,
    features: Annotated[bool, typer.Option("--features/--no-features", help="Write feature vector files")] = True,
    annotations: Annotated[int | None, typer.Option(help="Total annotation rows (overrides --scale)")] = None,
) -> None:
    """Write an offline copy of the real source layouts (MERMAID, CoralNet, API pages) from a seed."""
    from mermaid_data.demo import generate_demo_sources

    summary = generate_demo_sources(dest, scale=scale, seed=seed, features=features, annotations=annotations)
    console.print(summary)


snapshot_app = typer.Typer(no_args_is_help=True, help="Versioned training snapshots: create, list, show, diff, verify, rebuild, export.")
app.add_typer(snapshot_app, name="snapshot")
CsvOpt = Optional[Path]  # noqa: UP045 - a runtime alias typer reads


@snapshot_app.command("create")
@user_errors
def snapshot_create(
    lake: LakeOpt = None,
    coralnet_sources: Annotated[CsvOpt, typer.Option("--coralnet-sources", help="CSV with column id: CoralNet sources to keep (none = no CoralNet)")] = None,
    no_mermaid: Annotated[bool, typer.Option("--no-mermaid", help="Leave MERMAID annotations out")] = False,
    drop_growthforms: Annotated[bool, typer.Option("--drop-growthforms", help="Set every growth form to none (before rollups)")] = False,
    rollups: Annotated[CsvOpt, typer.Option("--rollups", help="CSV from_ba_id,from_gf_id,to_ba_id,to_gf_id")] = None,
    include: Annotated[CsvOpt, typer.Option("--include", help="CSV ba_id,gf_id: keep only these (after rollups)")] = None,
    exclude: Annotated[CsvOpt, typer.Option("--exclude", help="CSV ba_id,gf_id: drop these (after rollups)")] = None,
    annotation_limit: Annotated[int | None, typer.Option("--annotation-limit", help="Deterministic limit (half per site)")] = None,
    missing_features_allowed: Annotated[float | None, typer.Option("--missing-features-allowed", help="Percent (default MERMAID_MISSING_FEATURES_ALLOWED)")] = None,
    name: Annotated[str, typer.Option(help="A name for people (not part of the ID)")] = "",
    message: Annotated[str, typer.Option(help="A note (not part of the ID)")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and per-step counts; write nothing")] = False,
) -> None:
    """Shape the lake into a snapshot with an ID derived from its recipe (existing recipe: same ID)."""
    from mermaid_data.snapshot import SnapshotSpec, create_snapshot

    spec = SnapshotSpec(
        include_mermaid=not no_mermaid, coralnet_sources_csv=coralnet_sources, drop_growthforms=drop_growthforms,
        label_rollup_spec_csv=rollups, included_labels_csv=include, excluded_labels_csv=exclude,
        annotation_limit=annotation_limit, missing_features_allowed=missing_features_allowed, name=name,
        message=message,
    )
    result = create_snapshot(Lake.open(lake), spec, dry_run=dry_run, progress=default_progress())
    print_stage_counts(result.manifest)
    for warning in result.warnings or result.manifest.get("warnings", []):
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if result.dry_run:
        console.print(f"dry run: snapshot {result.snapshot_id} would hold {result.manifest['row_count']:,} rows; nothing written")
    elif result.created:
        console.print(f"created {result.snapshot_id}: {result.manifest['row_count']:,} rows at {result.uri}")
    else:
        console.print(f"exists {result.snapshot_id}: {result.manifest['row_count']:,} rows at {result.uri} (nothing written)")


def print_stage_counts(manifest: dict) -> None:
    table = Table(title=f"snapshot {manifest['snapshot_id']}: rows per step")
    for col in ("step", "reason", "dropped", "remaining"):
        table.add_column(col, justify="right" if col in ("dropped", "remaining") else "left")
    for row in manifest["stage_counts"]:
        table.add_row(row["step"], row["reason"], f"{row['dropped']:,}", f"{row['remaining']:,}")
    console.print(table)


@snapshot_app.command("list")
@user_errors
def snapshot_list(lake: LakeOpt = None) -> None:
    """Published snapshots (also: SELECT * FROM snapshots)."""
    from mermaid_data.snapshot.lifecycle import list_snapshots

    the_lake = Lake.open(lake)
    the_lake.require()
    frame = list_snapshots(the_lake)
    write_frame(frame.select("snapshot_id", "name", "created_at", "row_count", "content_sha256"), "table", None)


@snapshot_app.command("show")
@user_errors
def snapshot_show(snapshot_id: str, lake: LakeOpt = None, json_out: Annotated[bool, typer.Option("--json", help="Print the whole manifest")] = False) -> None:
    """Recipe, counts and warnings of one snapshot."""
    from mermaid_data.snapshot.lifecycle import dumps, manifest

    data = manifest(Lake.open(lake), snapshot_id)
    if json_out:
        console.print_json(dumps(data))
        return
    recipe = data["recipe"]
    console.print(f"[bold]{data['snapshot_id']}[/] {data['name']!r} created {data['created_at']}: {data['row_count']:,} rows, "
                  f"{data['duplicate_points']:,} duplicate points, content_sha256 {data['content_sha256']}")
    console.print(f"message: {data['message']}")
    console.print("inputs: " + ", ".join(f"{k}@v{v}" for k, v in recipe["input_versions"].items()))
    console.print("options: " + ", ".join(f"{k}={v}" for k, v in recipe["options"].items()))
    for kind, spec in recipe["spec_tables"].items():
        console.print(f"spec {kind}: {spec['path']} ({len(spec['rows'])} rows, sha256 {spec['sha256'][:12]})")
    print_stage_counts(data)
    for warning in data["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


@snapshot_app.command("diff")
@user_errors
def snapshot_diff(a: str, b: str, lake: LakeOpt = None) -> None:
    """Rows and labels added/removed/changed between snapshots A and B, and which recipe inputs differ."""
    from mermaid_data.snapshot.lifecycle import diff

    d = diff(Lake.open(lake), a, b)
    console.print(f"{d['a']} ({d['rows_a']:,} rows) → {d['b']} ({d['rows_b']:,} rows)")
    console.print(f"rows added {d['rows_added']:,}, removed {d['rows_removed']:,}, relabelled {d['rows_relabelled']:,}")
    console.print(f"labels added {len(d['labels_added'])}, removed {len(d['labels_removed'])}, "
                  f"with changed counts {d['label_changes'].height}")
    if d["label_changes"].height:
        write_frame(d["label_changes"].head(20), "table", None)
    for item in d["recipe_differences"]:
        console.print(f"recipe input {item['input']}: {item['a']} → {item['b']}", highlight=False)
    if not d["recipe_differences"]:
        console.print("recipes are identical")


@snapshot_app.command("verify")
@user_errors
def snapshot_verify(target: Annotated[str, typer.Argument(help="Snapshot ID (in --lake) or a folder (e.g. an export)")], lake: LakeOpt = None) -> None:
    """Re-hash a snapshot's files and rows against its manifest."""
    from mermaid_data.snapshot.build import snapshot_uri
    from mermaid_data.snapshot.lifecycle import resolve, verify

    if Path(target).is_dir() or "://" in target:
        location = target
    else:
        the_lake = Lake.open(lake)
        location = str(snapshot_uri(the_lake, resolve(the_lake, target)))
    result = verify(location)
    if result["ok"]:
        console.print(f"ok: {result['snapshot_id']} at {location}: every file and the row digest match the manifest")
        return
    for problem in result["problems"]:
        err.print(f"[bold red]mismatch:[/] {problem}", highlight=False)
    raise typer.Exit(1)


@snapshot_app.command("rebuild")
@user_errors
def snapshot_rebuild(snapshot_id: str, lake: LakeOpt = None) -> None:
    """Re-run a snapshot's recipe at its pinned versions and prove the digest is identical."""
    from mermaid_data.snapshot.lifecycle import rebuild

    r = rebuild(Lake.open(lake), snapshot_id)
    if r["identical"]:
        console.print(f"identical: {r['snapshot_id']} rebuilt to {r['row_count']:,} rows, content_sha256 {r['content_sha256']}")
        return
    err.print(f"[bold red]different:[/] {r['snapshot_id']} rebuilt to {r['row_count']:,} rows (expected "
              f"{r['expected_row_count']:,}), content_sha256 {r['content_sha256']} vs {r['expected']}")
    for d in r["differences"]:
        err.print(f"  because: {d}")
    raise typer.Exit(1)


@snapshot_app.command("export")
@user_errors
def snapshot_export(snapshot_id: str, dest: str, lake: LakeOpt = None) -> None:
    """Copy a snapshot (rows, manifest, reports) to DEST, self-contained and verifiable."""
    from mermaid_data.snapshot.lifecycle import export

    console.print(f"exported to {export(Lake.open(lake), snapshot_id, dest)}; check it with `mermaid-data snapshot verify {dest}`")


taxonomy_app = typer.Typer(no_args_is_help=True, help="The public MERMAID taxonomy bundled with mermaid-data.")
app.add_typer(taxonomy_app, name="taxonomy")


@taxonomy_app.command("snapshot")
@user_errors
def taxonomy_snapshot(
    dest: Annotated[Path, typer.Argument(help="Folder to write the bundle into (the package's own: packages/mermaid_data/src/mermaid_data/taxonomy/data)")],
    api: Annotated[str, typer.Option("--api", help="MERMAID API base URL (e.g. https://api.datamermaid.org/v1/) or a folder of saved API pages")],
    label_counts: Annotated[Path | None, typer.Option("--label-counts", help="CSV of CoralNet label counts (CoralNetID, Public annotation count); default: keep the bundled counts")] = None,
) -> None:
    """Write the taxonomy bundle (BAs, GFs, CoralNet label mappings and counts) from API pages."""
    from mermaid_data.taxonomy import snapshot_taxonomy

    result = snapshot_taxonomy(api, dest, label_counts_csv=label_counts)
    console.print(f"wrote {result.benthic_attributes} benthic attributes, {result.growth_forms} growth forms, "
                  f"{result.label_mappings} label mappings of {result.coralnet_labels} CoralNet labels to {result.dest}",
                  highlight=False, soft_wrap=True)
    console.print(f"label counts from {result.counts_from}"
                  + (f"; {result.labels_without_count} label(s) without a count (written as 0)" if result.labels_without_count else ""),
                  highlight=False, soft_wrap=True)


@app.command()
@user_errors
def vacuum(lake: LakeOpt = None, dry_run: Annotated[bool, typer.Option("--dry-run")] = False) -> None:
    """Delete Delta files no version needs any more, keeping every version a published snapshot pins."""
    from mermaid_data.snapshot.lifecycle import vacuum as run_vacuum

    the_lake = Lake.open(lake)
    the_lake.require()
    removed = run_vacuum(the_lake, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    console.print(", ".join(f"{t}: {verb} {n} file(s)" for t, n in removed.items()))


# ---- spec: starter spec CSVs computed from the lake (mermaid_data.specs, sql/spec/) ----------------

spec_app = typer.Typer(no_args_is_help=True, help="Starter spec CSVs from the lake, for snapshot create / DatasetOptions.")
app.add_typer(spec_app, name="spec")
SpecOutputOpt = Annotated[CsvOpt, typer.Option("--output", help="Write the CSV to this file (default: stdout)")]


def _emit_spec(result, output: Path | None) -> None:
    """The CSV to ``output`` (whole or not at all) or stdout; the summary line on stderr."""
    if output is None:
        sys.stdout.write(result.to_csv())
    else:
        result.write(output)
    err.print(f"wrote {output or 'stdout'}: {result.summary()}", highlight=False, soft_wrap=True)


@spec_app.command("rollups")
@user_errors
def spec_rollups(
    to: Annotated[str, typer.Option("--to", help="root | 'depth N' (root = depth 1) | CSV with a ba_id column of targets")],
    drop_growthforms: Annotated[bool, typer.Option("--drop-growthforms", help="Roll every (BA, GF) up to (target, no GF)")] = False,
    lake: LakeOpt = None,
    output: SpecOutputOpt = None,
) -> None:
    """Rollup CSV: every (BA, GF) pair of the lake rolled up to its ancestor at a level of the taxonomy."""
    from mermaid_data.specs import rollup_spec

    _emit_spec(rollup_spec(Lake.open(lake), to, drop_growthforms=drop_growthforms), output)


@spec_app.command("labels")
@user_errors
def spec_labels(
    min_annotations: Annotated[int, typer.Option("--min-annotations", help="Keep classes with at least N annotations")],
    top: Annotated[int | None, typer.Option("--top", help="Keep only the K largest of those")] = None,
    rollups: Annotated[CsvOpt, typer.Option("--rollups", help="Rollup CSV applied first (as snapshot create --rollups)")] = None,
    drop_growthforms: Annotated[bool, typer.Option("--drop-growthforms", help="Set every growth form to none (before rollups)")] = False,
    coralnet_sources: Annotated[CsvOpt, typer.Option("--coralnet-sources", help="CSV with column id: CoralNet sources counted (none = no CoralNet)")] = None,
    no_mermaid: Annotated[bool, typer.Option("--no-mermaid", help="Leave MERMAID annotations out")] = False,
    lake: LakeOpt = None,
    output: SpecOutputOpt = None,
) -> None:
    """Include CSV: the (BA, GF) classes with enough annotations after the recipe's rollups."""
    from mermaid_data.specs import label_spec

    result = label_spec(Lake.open(lake), min_annotations=min_annotations, top=top, rollups_csv=rollups,
                        drop_growthforms=drop_growthforms, coralnet_sources_csv=coralnet_sources,
                        include_mermaid=not no_mermaid)
    _emit_spec(result, output)


@spec_app.command("sources")
@user_errors
def spec_sources(
    min_images: Annotated[int, typer.Option("--min-images", help="Keep CoralNet sources with at least N images")],
    lake: LakeOpt = None,
    output: SpecOutputOpt = None,
) -> None:
    """CoralNet sources CSV (id, images, annotations): the sources with enough images."""
    from mermaid_data.specs import source_spec

    _emit_spec(source_spec(Lake.open(lake), min_images=min_images), output)


if __name__ == "__main__":  # pragma: no cover
    app()
