"""mermaid-data: ingest sources into the lake, query it with SQL, shape training snapshots, inspect history.

Every command runs inside the boundary of ``mermaid_data.cli_base`` (errors are one line; ``--debug``
shows the traceback) and checks its options before any heavy work. Printing lives in
``mermaid_data.output``. Heavy imports (DuckDB, polars, the lake) happen inside the commands, so
``--help`` starts fast.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from mermaid_data.cli_base import make_app, user_errors  # user_errors: not needed (kept for old code)
from mermaid_data.errors import ConfigError, StorageError, from_exception
from mermaid_data.output import (  # also imported from here by mermaid_train (print_report, write_frame)
    Format,
    TextFormat,
    check_output,
    console,
    err,
    print_report,
    print_stage_counts,
    print_summary,
    print_warning,
    resolve_format,
    write_frame,
    write_listing,
)
from mermaid_data.progress import default_progress

app = make_app("mermaid-data", help=__doc__.split("\n\n")[0])

LakeOpt = Annotated[str | None, typer.Option("--lake", metavar="URI", help="Lake folder or s3:// URI (default: MERMAID_LAKE_URI or ./lake)")]


def open_lake(uri: str | None, *, exists: bool = False, writable: bool = False):
    """The lake at ``uri``, checked before any work: it must exist, or be writable (or both)."""
    from mermaid_data.lake import Lake

    lake = Lake.open(uri)
    if writable:
        lake.require_writable()
    if exists:
        lake.require()
    return lake


@contextmanager
def writing(lake) -> Iterator[None]:
    """Name the lake in an OS error (a full disk) that does not say which file it hit."""
    try:
        yield
    except Exception as exc:
        error = from_exception(exc, where=str(lake))
        if isinstance(error, StorageError):
            raise error from exc
        raise


def read_sources_csv(path: Path) -> list[str]:
    """CoralNet source ids from a CSV with an ``id`` column (extra columns ignored); at least one."""
    from mermaid_data.errors import SourceFormatError
    from mermaid_data.snapshot.spec import read_spec_csv

    ids = [row[0] for row in read_spec_csv(path, "sources").rows]
    if not ids:  # ingest would read no CoralNet source at all: surely the wrong file
        raise SourceFormatError("a header but no rows (no source ids)", where=str(path), row=2,
                                fix="list the CoralNet source ids to ingest, or leave out --coralnet-sources")
    return ids


def check_as_of(as_of: str | None) -> None:
    """``--as-of`` must be an annotations version (digits) or an ISO date/time."""
    if as_of is None or as_of.isdigit():
        return
    try:
        datetime.fromisoformat(as_of)
    except ValueError:
        raise ConfigError(
            f"--as-of {as_of!r} is neither a version number nor an ISO date/time",
            fix="pass an annotations version (`mermaid-data history --table annotations` lists them) "
                "or a time like 2026-07-01 or 2026-07-01T12:00:00+00:00",
        ) from None


@app.command()
def ingest(
    lake: LakeOpt = None,
    mermaid: Annotated[str | None, typer.Option(metavar="URI", help="URI of mermaid_confirmed_annotations.parquet; 'none' skips MERMAID")] = None,
    coralnet: Annotated[str | None, typer.Option(metavar="URI", help="Root URI holding s<id>/annotations.csv")] = None,
    coralnet_sources: Annotated[Path | None, typer.Option("--coralnet-sources", metavar="CSV", help="CSV with an 'id' column: only these sources")] = None,
    api: Annotated[str | None, typer.Option(metavar="URL|DIR|bundled", help="MERMAID API base URL, a local directory of pages, 'bundled' (the taxonomy shipped with mermaid-data) or 'none' (skip)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan with row counts; write nothing")] = False,
) -> None:
    """Materialize MERMAID and CoralNet annotations and the MERMAID taxonomy into the lake."""
    from mermaid_data.ingest import ingest as run_ingest
    from mermaid_data.settings import get_settings

    settings = get_settings()
    mermaid_uri = settings.annotations_uri if mermaid is None else (None if mermaid.lower() == "none" else mermaid)
    coralnet_uri = coralnet if coralnet is not None else settings.coralnet_root_uri
    api_uri = settings.api_url if api is None else (None if api.lower() == "none" else api)
    only = read_sources_csv(coralnet_sources) if coralnet_sources else None
    the_lake = open_lake(lake, writable=not dry_run)
    with writing(the_lake):
        report = run_ingest(
            the_lake, mermaid_uri=mermaid_uri, coralnet_uri=coralnet_uri, coralnet_sources=only,
            api=api_uri, dry_run=dry_run, progress=default_progress(),
        )
    print_report(report, the_lake)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="A DuckDB SQL query over the lake's views")],
    lake: LakeOpt = None,
    format: Annotated[Optional[Format], typer.Option("--format", help="Output format (default: from the --output file name, else table)")] = None,  # noqa: UP045
    output: Annotated[Path | None, typer.Option("--output", metavar="FILE", help="Write to this file instead of stdout (.csv .json .parquet .txt set the format)")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", metavar="VERSION|TIME", help="annotations Delta version (others as of its time) or an ISO time")] = None,
) -> None:
    """Run SQL over views of every lake table plus annotations_mapped."""
    check_output(output)
    chosen = resolve_format(format, output)
    check_as_of(as_of)
    frame = open_lake(lake, exists=True).sql(query, as_of=as_of)
    write_frame(frame, chosen, output)


@app.command()
def history(
    lake: LakeOpt = None,
    table: Annotated[str | None, typer.Option(metavar="NAME", help="Only this table")] = None,
    format: Annotated[TextFormat, typer.Option("--format", help="Output format")] = TextFormat.table,
) -> None:
    """List each table's Delta versions: time, operation, rows added/removed, which sources."""
    import polars as pl

    from mermaid_data.tables import TABLES

    if table is not None and table not in TABLES:
        raise ConfigError(f"unknown table {table!r}", fix=f"pass one of {', '.join(TABLES)}")
    frame = open_lake(lake, exists=True).history()
    if table:
        frame = frame.filter(pl.col("table") == table)
    if format is TextFormat.table:
        frame = frame.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%d %H:%M:%S"))
    write_listing(frame, format, frame.columns)


@app.command("demo-sources")
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
    print_summary(f"demo sources in {dest}", summary)


snapshot_app = typer.Typer(no_args_is_help=True, help="Versioned training snapshots: create, list, show, diff, verify, rebuild, export.")
app.add_typer(snapshot_app, name="snapshot")
CsvOpt = Optional[Path]  # noqa: UP045 - a runtime alias typer reads
SnapshotArg = Annotated[str, typer.Argument(metavar="SNAPSHOT_ID", help="Snapshot ID or a unique prefix of one")]


@snapshot_app.command("create")
def snapshot_create(
    lake: LakeOpt = None,
    coralnet_sources: Annotated[CsvOpt, typer.Option("--coralnet-sources", metavar="CSV", help="CSV with column id: CoralNet sources to keep (none = no CoralNet)")] = None,
    no_mermaid: Annotated[bool, typer.Option("--no-mermaid", help="Leave MERMAID annotations out")] = False,
    drop_growthforms: Annotated[bool, typer.Option("--drop-growthforms", help="Set every growth form to none (before rollups)")] = False,
    rollups: Annotated[CsvOpt, typer.Option("--rollups", metavar="CSV", help="CSV from_ba_id,from_gf_id,to_ba_id,to_gf_id")] = None,
    include: Annotated[CsvOpt, typer.Option("--include", metavar="CSV", help="CSV ba_id,gf_id: keep only these (after rollups)")] = None,
    exclude: Annotated[CsvOpt, typer.Option("--exclude", metavar="CSV", help="CSV ba_id,gf_id: drop these (after rollups)")] = None,
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
    spec.validate()
    the_lake = open_lake(lake, exists=True, writable=not dry_run)
    with writing(the_lake):
        result = create_snapshot(the_lake, spec, dry_run=dry_run, progress=default_progress())
    print_stage_counts(result.manifest)
    for warning in result.warnings or result.manifest.get("warnings", []):
        print_warning(warning)
    if result.dry_run:
        console.print(f"dry run: snapshot {result.snapshot_id} would hold {result.manifest['row_count']:,} rows; nothing written")
    elif result.created:
        console.print(f"created {result.snapshot_id}: {result.manifest['row_count']:,} rows at {result.uri}", soft_wrap=True)
    else:
        console.print(f"exists {result.snapshot_id}: {result.manifest['row_count']:,} rows at {result.uri} (nothing written)",
                      soft_wrap=True)


@snapshot_app.command("list")
def snapshot_list(
    lake: LakeOpt = None,
    format: Annotated[TextFormat, typer.Option("--format", help="Output format (csv and json: every catalog column)")] = TextFormat.table,
) -> None:
    """Published snapshots, newest first (also: SELECT * FROM snapshots)."""
    from mermaid_data.snapshot.lifecycle import list_snapshots

    frame = list_snapshots(open_lake(lake, exists=True))
    write_listing(frame, format, ["snapshot_id", "name", "created_at", "row_count", "content_sha256"])


@snapshot_app.command("show")
def snapshot_show(
    snapshot_id: SnapshotArg,
    lake: LakeOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the whole manifest")] = False,
) -> None:
    """Recipe, counts and warnings of one snapshot."""
    from mermaid_data.snapshot.lifecycle import dumps, manifest

    data = manifest(open_lake(lake, exists=True), snapshot_id)
    if json_out:
        console.print_json(dumps(data))
        return
    recipe = data["recipe"]
    console.print(f"[bold]{data['snapshot_id']}[/] {escape(repr(data['name']))} created {data['created_at']}: {data['row_count']:,} rows, "
                  f"{data['duplicate_points']:,} duplicate points, content_sha256 {data['content_sha256']}", soft_wrap=True)
    console.print(f"message: {data['message']}", markup=False, soft_wrap=True)
    console.print("inputs: " + ", ".join(f"{k}@v{v}" for k, v in recipe["input_versions"].items()), soft_wrap=True)
    console.print("options: " + ", ".join(f"{k}={v}" for k, v in recipe["options"].items()), markup=False, soft_wrap=True)
    for kind, spec in recipe["spec_tables"].items():
        console.print(f"spec {kind}: {spec['path']} ({len(spec['rows'])} rows, sha256 {spec['sha256'][:12]})",
                      markup=False, soft_wrap=True)
    print_stage_counts(data)
    for warning in data["warnings"]:
        print_warning(warning)


@snapshot_app.command("diff")
def snapshot_diff(
    a: Annotated[str, typer.Argument(metavar="A", help="The older snapshot ID (or a unique prefix)")],
    b: Annotated[str, typer.Argument(metavar="B", help="The newer snapshot ID (or a unique prefix)")],
    lake: LakeOpt = None,
) -> None:
    """Rows and labels added/removed/changed between snapshots A and B, and which recipe inputs differ."""
    from mermaid_data.snapshot.lifecycle import diff

    d = diff(open_lake(lake, exists=True), a, b)
    console.print(f"{d['a']} ({d['rows_a']:,} rows) → {d['b']} ({d['rows_b']:,} rows)")
    console.print(f"rows added {d['rows_added']:,}, removed {d['rows_removed']:,}, relabelled {d['rows_relabelled']:,}")
    console.print(f"labels added {len(d['labels_added'])}, removed {len(d['labels_removed'])}, "
                  f"with changed counts {d['label_changes'].height}")
    if d["label_changes"].height:
        write_frame(d["label_changes"].head(20), "table", None)
    for item in d["recipe_differences"]:
        console.print(f"recipe input {item['input']}: {item['a']} → {item['b']}", highlight=False, markup=False)
    if not d["recipe_differences"]:
        console.print("recipes are identical")


@snapshot_app.command("verify")
def snapshot_verify(
    target: Annotated[str, typer.Argument(metavar="TARGET", help="Snapshot ID (in --lake) or a folder (e.g. an export)")],
    lake: LakeOpt = None,
) -> None:
    """Re-hash a snapshot's files and rows against its manifest."""
    from mermaid_data.snapshot.build import snapshot_uri
    from mermaid_data.snapshot.lifecycle import resolve, verify

    if Path(target).is_dir() or "://" in target:
        location = target
    else:
        the_lake = open_lake(lake, exists=True)
        location = str(snapshot_uri(the_lake, resolve(the_lake, target)))
    result = verify(location)
    if result["ok"]:
        console.print(f"ok: {result['snapshot_id']} at {location}: every file and the row digest match the manifest",
                      soft_wrap=True)
        return
    for problem in result["problems"]:
        err.print(f"[bold red]mismatch:[/] {escape(str(problem))}")
    raise typer.Exit(1)


@snapshot_app.command("rebuild")
def snapshot_rebuild(snapshot_id: SnapshotArg, lake: LakeOpt = None) -> None:
    """Re-run a snapshot's recipe at its pinned versions and prove the digest is identical."""
    from mermaid_data.snapshot.lifecycle import rebuild

    r = rebuild(open_lake(lake, exists=True), snapshot_id)
    if r["identical"]:
        console.print(f"identical: {r['snapshot_id']} rebuilt to {r['row_count']:,} rows, content_sha256 {r['content_sha256']}",
                      soft_wrap=True)
        return
    err.print(f"[bold red]different:[/] {r['snapshot_id']} rebuilt to {r['row_count']:,} rows (expected "
              f"{r['expected_row_count']:,}), content_sha256 {r['content_sha256']} vs {r['expected']}")
    for d in r["differences"]:
        err.print(f"  because: {escape(str(d))}")
    raise typer.Exit(1)


@snapshot_app.command("export")
def snapshot_export(
    snapshot_id: SnapshotArg,
    dest: Annotated[str, typer.Argument(metavar="DEST", help="A new folder (or s3:// prefix) to copy the snapshot to")],
    lake: LakeOpt = None,
) -> None:
    """Copy a snapshot (rows, manifest, reports) to DEST, self-contained and verifiable."""
    from mermaid_data.snapshot.lifecycle import export

    console.print(f"exported to {export(open_lake(lake, exists=True), snapshot_id, dest)}; check it with "
                  f"`mermaid-data snapshot verify {dest}`", soft_wrap=True)


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
def vacuum(
    lake: LakeOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count the files that would be deleted; delete nothing")] = False,
) -> None:
    """Delete Delta files no version needs any more, keeping every version a published snapshot pins."""
    from mermaid_data.snapshot.lifecycle import vacuum as run_vacuum

    the_lake = open_lake(lake, exists=True, writable=not dry_run)
    with writing(the_lake):
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

    _emit_spec(rollup_spec(open_lake(lake, exists=True), to, drop_growthforms=drop_growthforms), output)


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

    result = label_spec(open_lake(lake, exists=True), min_annotations=min_annotations, top=top, rollups_csv=rollups,
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

    _emit_spec(source_spec(open_lake(lake, exists=True), min_images=min_images), output)


if __name__ == "__main__":  # pragma: no cover
    app()
