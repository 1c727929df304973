"""Create a snapshot: shape the pinned lake with the SQL steps, write rows + reports + manifest once.

Steps 1-5 run on the label groups (one row per distinct site, source, label id, BA and GF), so one
pass over the pinned annotations writes the kept rows sorted by a total order; a counting pass over
step 6 runs first only when the limit, ``--dry-run`` or an S3 lake needs it. The digest and reports
then read the written Parquet file.

A create in flight holds a lease (``locks.lease``) naming the versions it pinned, so ``vacuum`` keeps
their files; its scratch folder carries the lease's token, so a dead create's scratch is reclaimed by the
next create or vacuum and a live one's never is. The ``snapshots`` catalog is appended under the
catalog lock, once per ID.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import CommitProperties, write_deltalake

from mermaid_data import locks, sqlfiles, storage
from mermaid_data.errors import ConfigError, SnapshotError
from mermaid_data.lake import Lake
from mermaid_data.progress import Progress, SilentProgress
from mermaid_data.settings import get_settings
from mermaid_data.snapshot import queries
from mermaid_data.snapshot.recipe import Recipe, current_sql_hashes
from mermaid_data.snapshot.spec import SnapshotSpec, SpecTable, read_spec_csv
from mermaid_data.sqlfiles import sql_literal
from mermaid_data.tables import SNAPSHOT_INPUTS, SNAPSHOTS

ROWS_FILE = "rows.parquet"
MANIFEST_FILE = "manifest.json"
REPORTS = ("ba_counts.csv", "bagf_counts.csv", "project_stats.csv", "unmapped_labels.csv",
           "label_mapping.csv", "dropped_by_reason.csv")
STAGES = (
    ("unmapped_label", "1 map"),
    ("mermaid_not_included", "2 sources"),
    ("source_not_selected", "2 sources"),
    ("label_not_included", "5 include"),
    ("label_excluded", "5 exclude"),
    ("missing_features", "6 features"),
    ("over_limit", "7 limit"),
)
MANIFEST_KEYS = ("snapshot_id", "recipe", "files", "content_sha256", "row_count")
SCRATCH_PREFIXES = (".tmp-", ".rebuild-")
#: How long a create waits for another process appending to the catalog (a moment, normally).
CATALOG_WAIT_S = 120.0


@dataclass
class SnapshotResult:
    snapshot_id: str
    created: bool
    manifest: dict
    uri: str
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)


def snapshots_root(lake: Lake) -> storage.Uri:
    return lake.uri.join("snapshots")


def snapshot_uri(lake: Lake, snapshot_id: str) -> storage.Uri:
    return snapshots_root(lake).join(snapshot_id)


def read_manifest(uri: storage.Uri) -> dict | None:
    """The manifest of the snapshot folder ``uri``; None if it has none; SnapshotError if it is damaged."""
    where = uri.join(MANIFEST_FILE)
    try:
        raw = storage.read_bytes(where)
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:  # also UnicodeDecodeError
        problem = f"manifest.json is damaged (not valid JSON: {str(exc).splitlines()[0]})"
    else:
        missing = [k for k in MANIFEST_KEYS if not isinstance(data, dict) or k not in data]
        if not missing:
            return data
        problem = f"manifest.json is damaged (no {', '.join(missing)})"
    raise SnapshotError(
        problem, where=str(where),
        fix="restore it from an export of the snapshot (`snapshot export` copies it) or a backup; or, if the "
        "snapshot is not needed, delete its folder (vacuum refuses to run while a manifest is unreadable)",
    )


def build_recipe(lake: Lake, spec: SnapshotSpec) -> Recipe:
    """Parse the spec CSVs and pin the lake's current input versions."""
    spec.validate()
    lake.require()
    specs: dict[str, SpecTable] = {}
    if spec.coralnet_sources_csv:
        specs["sources"] = read_spec_csv(spec.coralnet_sources_csv, "sources")
    if spec.label_rollup_spec_csv:
        specs["rollups"] = read_spec_csv(spec.label_rollup_spec_csv, "rollups")
    if spec.included_labels_csv:
        specs["include"] = read_spec_csv(spec.included_labels_csv, "include")
    if spec.excluded_labels_csv:
        specs["exclude"] = read_spec_csv(spec.excluded_labels_csv, "exclude")
    current = lake.versions()
    versions = {name: current[name] for name in SNAPSHOT_INPUTS if name in current}
    allowed = spec.missing_features_allowed
    if allowed is None:
        allowed = get_settings().missing_features_allowed
    options = {
        "include_mermaid": bool(spec.include_mermaid),
        "drop_growthforms": bool(spec.drop_growthforms),
        "annotation_limit": spec.annotation_limit,
        "missing_features_allowed": float(allowed),
        "label_mode": "include" if "include" in specs else ("exclude" if "exclude" in specs else "none"),
    }
    return Recipe(versions, specs, options, current_sql_hashes())


def _spec_arrow(recipe: Recipe) -> dict[str, pa.Table]:
    def table(kind: str, columns: tuple[str, ...], names: tuple[str, ...]) -> pa.Table:
        rows = recipe.specs[kind].rows if kind in recipe.specs else ()
        return pa.table({n: pa.array([r[i] for r in rows], pa.string()) for i, n in enumerate(names)})

    label_kind = recipe.options["label_mode"] if recipe.options["label_mode"] != "none" else "include"
    return {
        "spec_sources": table("sources", ("id",), ("id",)),
        "spec_rollups": table("rollups", (), ("from_ba_id", "from_gf_id", "to_ba_id", "to_gf_id")),
        "spec_labels": table(label_kind, (), ("ba_id", "gf_id")),
    }


def open_pinned(lake: Lake, recipe: Recipe, sql: queries.SnapshotSql | None = None) -> duckdb.DuckDBPyConnection:
    """A connection over the recipe's pinned versions with its spec tables registered (and the label groups)."""
    sql = sql or queries.compose()
    con = lake.connect(recipe.input_versions)
    for name, table in _spec_arrow(recipe).items():
        con.register(name, table)
    con.execute(f"CREATE TEMP TABLE label_groups AS {sql.label_groups}")
    return con


def _params(recipe: Recipe, quotas: tuple[int, int] | None = None) -> dict:
    params = {
        "include_mermaid": recipe.options["include_mermaid"],
        "drop_growthforms": recipe.options["drop_growthforms"],
        "label_mode": recipe.options["label_mode"],
    }
    if quotas is not None:
        params["mermaid_quota"], params["coralnet_quota"] = quotas
    return params


def _warnings(con: duckdb.DuckDBPyConnection, recipe: Recipe) -> list[str]:
    """IDs the taxonomy does not know, rollup chains; recorded in the manifest, never fatal."""
    out = []
    bas = {r[0] for r in con.execute("SELECT id FROM benthic_attributes").fetchall()}
    gfs = {r[0] for r in con.execute("SELECT id FROM growth_forms").fetchall()} | {""}
    for kind, spec in sorted(recipe.specs.items()):
        if kind == "sources":
            continue
        for row in spec.rows:
            pairs = [(row[0], row[1]), (row[2], row[3])] if kind == "rollups" else [(row[0], row[1])]
            for ba, gf in pairs:
                if ba not in bas:
                    out.append(f"{spec.path}: benthic attribute {ba} is not in the lake's taxonomy")
                if gf not in gfs:
                    out.append(f"{spec.path}: growth form {gf} is not in the lake's taxonomy")
    if "rollups" in recipe.specs:
        rules = {(r[0], r[1]): (r[2], r[3]) for r in recipe.specs["rollups"].rows}
        for src, dst in sorted(rules.items()):
            if dst in rules and dst != src:
                nxt = rules[dst]
                out.append(
                    f"{recipe.specs['rollups'].path}: rollup chain {src[0]}/{src[1] or '-'} -> {dst[0]}/{dst[1] or '-'}"
                    f" -> {nxt[0]}/{nxt[1] or '-'}: applied in one pass, so rows stop at {dst[0]}/{dst[1] or '-'}"
                )
    return sorted(set(out))


def check_sources(con: duckdb.DuckDBPyConnection, recipe: Recipe) -> None:
    """Refuse a sources CSV that lists CoralNet sources the pinned lake does not hold."""
    if "sources" not in recipe.specs:
        return
    present = {r[0] for r in con.execute(
        "SELECT DISTINCT source_id FROM label_groups WHERE site = 'coralnet'").fetchall()}
    missing = [r[0] for r in recipe.specs["sources"].rows if r[0] not in present]
    if missing:
        raise ConfigError(
            f"CoralNet source(s) {', '.join('s' + m for m in missing)} listed but not in the lake",
            where=recipe.specs["sources"].path,
            fix="ingest them first (`mermaid-data ingest --coralnet ROOT`) or remove them from the sources CSV",
        )


def quotas_for(limit: int | None, mermaid_rows: int, coralnet_rows: int) -> tuple[int, int]:
    """Half from each site (MERMAID gets the odd one), the other filling any shortfall."""
    if limit is None or limit >= mermaid_rows + coralnet_rows:
        return mermaid_rows, coralnet_rows
    if mermaid_rows == 0 or coralnet_rows == 0:
        return min(limit, mermaid_rows), min(limit, coralnet_rows)
    mermaid_q = min(mermaid_rows, (limit + 1) // 2)
    coralnet_q = min(coralnet_rows, limit - mermaid_q)
    mermaid_q = min(mermaid_rows, limit - coralnet_q)
    return mermaid_q, coralnet_q


def create_snapshot(
    lake: Lake, spec: SnapshotSpec, *, dry_run: bool = False, progress: Progress | None = None
) -> SnapshotResult:
    """Build (or find) the snapshot of ``spec`` over the lake's latest lake version."""
    progress = progress or SilentProgress()
    spec.validate()
    lake.require()
    if dry_run:
        recipe = build_recipe(lake, spec)
        return build(lake, recipe, spec.name, spec.message, snapshot_uri(lake, recipe.snapshot_id), dry_run=True,
                     progress=progress)
    for _attempt in range(5):
        recipe = build_recipe(lake, spec)
        sid = recipe.snapshot_id
        target = snapshot_uri(lake, sid)
        existing = read_manifest(target)
        if existing is not None:  # the common case of a known recipe: read only, nothing written
            if not _recorded(lake, sid):
                record_once(lake, existing)  # published, but its writer died before cataloguing it
            return SnapshotResult(sid, False, existing, str(target))
        with locks.lease(lake.uri, "snapshot create", kind="create", snapshot_id=sid,
                         versions=recipe.input_versions) as held:
            # Pinned, then leased, then checked: if no ingest completed in between, no vacuum can have
            # removed the pinned files (vacuum keeps the latest lake version and every leased one).
            if {k: v for k, v in lake.versions().items() if k in recipe.input_versions} != recipe.input_versions:
                continue
            reclaim_scratch(lake)
            existing = read_manifest(target)
            if existing is not None:  # published by another create meanwhile
                record_once(lake, existing)
                return SnapshotResult(sid, False, existing, str(target))
            return build(lake, recipe, spec.name, spec.message, target, progress=progress, token=held.token)
    raise SnapshotError("the lake changed five times while this snapshot was being pinned", where=str(lake.uri),
                        fix="run `snapshot create` again once the running ingests have finished")


def build(lake, recipe: Recipe, name: str, message: str, target: storage.Uri, *, dry_run=False,
          progress: Progress | None = None, publish: bool = True, token: str | None = None) -> SnapshotResult:
    """Run the recipe. With ``publish=False`` (rebuild) write to ``target`` (a scratch folder) and return
    its manifest; otherwise write to a scratch folder named with ``token`` and publish it as ``target``.

    Steps 1-5 are counted on the label groups (cheap). Step 6 is counted in a pass of its own only
    when something must know its outcome before writing: the limit's quotas, ``--dry-run``, or an S3
    lake (rows are written in place there, so every check runs first). Otherwise the rows are written
    at once and step 6's counts are the written rows per source against those that reached it.
    """
    progress = progress or SilentProgress()
    with sqlfiles.composition() as used:
        sql = queries.compose()
        try:
            result = _build(lake, recipe, sql, name, message, target, dry_run, progress, publish, token)
        except duckdb.Error as exc:
            damaged = lake.damage(exc, recipe.input_versions)
            if damaged is None:
                raise
            raise damaged from exc
    if isinstance(result, SnapshotResult):
        return result
    scratch, manifest, warnings = result
    unhashed = sorted(n for n, text in used.items() if recipe.sql_sha256.get(n) != sqlfiles.sha256_text(text))
    if unhashed and publish:  # a statement the recipe does not cover: never publish under this ID
        if not lake.uri.is_s3:
            storage.delete_prefix(scratch)
        raise SnapshotError(f"the build read SQL the snapshot ID does not cover: {', '.join(unhashed)}",
                            where=str(lake.uri), fix="report this bug; every statement must come from "
                            "snapshot/queries.compose (or SQL files changed while the command ran: run it again)")
    if not publish:
        return SnapshotResult(recipe.snapshot_id, False, manifest, str(scratch), warnings=warnings)
    created = _publish(lake, scratch, target, manifest)
    published = manifest if created else read_manifest(target)
    record_once(lake, published)
    return SnapshotResult(recipe.snapshot_id, created, published, str(target), warnings=warnings)


def _build(lake, recipe: Recipe, sql: queries.SnapshotSql, name: str, message: str, target: storage.Uri,
           dry_run: bool, progress: Progress, publish: bool, token: str | None):
    """The body of ``build``: a dry-run result, or (scratch folder, manifest, warnings)."""
    sid = recipe.snapshot_id
    con = open_pinned(lake, recipe, sql)
    written = False
    scratch = target
    try:
        check_sources(con, recipe)
        warnings = _warnings(con, recipe)
        groups = con.execute(sql.group_counts, _params(recipe)).fetchall()
        counts = [row for row in groups if row[2] is not None]  # (site, source, reason, label, annotations)
        limit = recipe.options["annotation_limit"]
        feature_pass = dry_run or limit is not None or lake.uri.is_s3
        quotas = None
        if feature_pass:
            with progress.task(f"{sid}: count rows per step"):
                counts += _step6_counted(con, recipe, sql)
            stage = _stage_summary(counts)
            _check_missing_features(con, recipe, stage, sql)
            quotas = quotas_for(limit, stage["kept_by_site"].get("mermaid", 0), stage["kept_by_site"].get("coralnet", 0))
            stage["dropped"]["over_limit"] = sum(stage["kept_by_site"].values()) - sum(quotas)
            if dry_run:
                plan = {
                    "snapshot_id": sid,
                    "input_versions": recipe.input_versions,
                    "options": recipe.options,
                    "stage_counts": _stage_table(stage),
                    "row_count": sum(quotas),
                    "warnings": warnings,
                }
                return SnapshotResult(sid, False, plan, str(target), dry_run=True, warnings=warnings)

        scratch = _scratch_dir(lake, sid, token) if publish else target
        rows_uri = scratch.join(ROWS_FILE)
        if not scratch.is_s3:
            Path(scratch.key).mkdir(parents=True, exist_ok=True)
        written = True
        limit_binds = quotas is not None and stage["dropped"]["over_limit"] > 0
        with progress.task(f"{sid}: write rows"):
            con.execute("SET preserve_insertion_order = true")
            rows_sql = sql.rows_limited if limit_binds else sql.rows_unlimited
            con.execute(f"COPY ({rows_sql}) TO {sql_literal(str(rows_uri))} (FORMAT parquet, COMPRESSION zstd)",
                        _params(recipe, quotas if limit_binds else None))
        con.execute(f"CREATE VIEW snapshot_rows AS SELECT * FROM read_parquet({sql_literal(str(rows_uri))})")
        after = con.execute(
            "SELECT site, source_id, count(DISTINCT image_id) AS images_after, count(*) AS annotations_after "
            "FROM snapshot_rows GROUP BY ALL").to_arrow_table()
        if not feature_pass:
            counts += _step6_from_written(groups, after)
            stage = _stage_summary(counts)
            _check_missing_features(con, recipe, stage, sql)
        with progress.task(f"{sid}: digest and reports"):
            digest = content_digest(con, sql.digest)
            reports = _reports(con, counts, stage, after, sql)
        for file_name, csv_text in reports.items():
            storage.write_bytes(scratch.join(file_name), csv_text.encode())
        files = {name: _sha256_uri(scratch.join(name)) for name in (ROWS_FILE, *REPORTS)}
        label_counts = [
            {"benthic_attribute_id": r[0], "growth_form_id": r[1], "annotations": int(r[2])}
            for r in con.execute(
                "SELECT benthic_attribute_id, growth_form_id, count(*) FROM snapshot_rows GROUP BY ALL ORDER BY 1, 2"
            ).fetchall()
        ]
        duplicates = con.execute("SELECT count(*) FROM snapshot_rows WHERE occurrence > 1").fetchone()[0]
    except BaseException:
        if written and publish and not lake.uri.is_s3:
            storage.delete_prefix(scratch)  # never leave a half-written snapshot behind
        raise
    finally:
        con.close()

    manifest = {
        "format": 1,
        "snapshot_id": sid,
        "name": name,
        "message": message,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "recipe": recipe.to_manifest(),
        "recipe_sha256": recipe.sha256,
        "row_count": digest["row_count"],
        "content_sha256": digest["content_sha256"],
        "digest_parts": digest["parts"],
        "duplicate_points": int(duplicates),
        "stage_counts": _stage_table(stage),
        "label_counts": label_counts,
        "warnings": warnings,
        "files": files,
    }
    return scratch, manifest, warnings


def content_digest(con: duckdb.DuckDBPyConnection, digest_sql: str | None = None) -> dict:
    """Canonical digest of view ``snapshot_rows`` (see sql/snapshot/digest.sql)."""
    n, su, sl, xu, xl = con.execute(digest_sql or sqlfiles.load_sql("snapshot/digest")).fetchone()
    parts = {"rows": int(n), "sum_upper": su or "0", "sum_lower": sl or "0", "xor_upper": xu or "0", "xor_lower": xl or "0"}
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return {"row_count": int(n), "content_sha256": hashlib.sha256(text.encode()).hexdigest(), "parts": parts}


def _sha256_uri(uri: storage.Uri) -> str:
    if not uri.is_s3:
        return storage.sha256_file(Path(uri.key))
    return hashlib.sha256(storage.read_bytes(uri)).hexdigest()


def _scratch_dir(lake: Lake, sid: str, token: str | None) -> storage.Uri:
    if lake.uri.is_s3:
        return snapshot_uri(lake, sid)  # S3: written in place; the manifest (put last, if absent) publishes
    return snapshots_root(lake).join(f".tmp-{sid}-{token or uuid.uuid4().hex[:16]}")


def reclaim_scratch(lake: Lake) -> int:
    """Delete what dead creates and rebuilds left under ``snapshots/`` (never a live one's); return the
    number of files deleted. A scratch folder ends with its lease's token; on S3 a create writes in
    place, so a dead create's unpublished ``snapshots/<id>/`` (no manifest) is deleted."""
    live, stale = locks.leases(lake.uri)
    try:
        live_tokens = {held.token for held in live}
        live_ids = {held.content.get("snapshot_id") for held in live}
        root = snapshots_root(lake)
        doomed: list[storage.Uri] = []
        names = storage.list_dirs(root) if root.is_s3 else (
            [p.name for p in Path(root.key).iterdir() if p.is_dir()] if Path(root.key).is_dir() else [])
        for folder in names:
            if folder.startswith(SCRATCH_PREFIXES) and folder.rsplit("-", 1)[-1] not in live_tokens:
                doomed.append(root.join(folder))
        if root.is_s3:
            for dead in stale:
                sid = dead.content.get("snapshot_id")
                if (dead.content.get("kind") == "create" and sid and sid not in live_ids
                        and not storage.exists(snapshot_uri(lake, sid).join(MANIFEST_FILE))):
                    doomed.append(snapshot_uri(lake, sid))
        removed = 0
        for uri in doomed:
            removed += sum(1 for _ in storage.list_prefix(uri))
            storage.delete_prefix(uri)
        for dead in stale:
            dead.remove()
        stale = []
        return removed
    finally:
        for dead in stale:
            dead.release()


def _publish(lake: Lake, scratch: storage.Uri, target: storage.Uri, manifest: dict) -> bool:
    """Make the snapshot visible exactly once; False if another writer published it first."""
    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
    if target.is_s3:
        from botocore.exceptions import ClientError

        try:
            storage.s3_client().put_object(
                Bucket=target.bucket, Key=target.join(MANIFEST_FILE).key, Body=body, IfNoneMatch="*"
            )
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise
    Path(scratch.key, MANIFEST_FILE).write_bytes(body)
    try:
        os.rename(scratch.key, target.key)
        return True
    except OSError:
        if Path(target.key, MANIFEST_FILE).is_file():
            shutil.rmtree(scratch.key, ignore_errors=True)
            return False
        raise


def _recorded(lake: Lake, snapshot_id: str) -> bool:
    """True if the ``snapshots`` table has a row for ``snapshot_id``."""
    table = lake.read(SNAPSHOTS.name, ["snapshot_id"])
    if table is None:
        return False
    return snapshot_id in set(table.column(0).to_pylist())


def record_once(lake: Lake, manifest: dict) -> None:
    """Append ``manifest``'s row to the ``snapshots`` catalog unless it is there (under the catalog lock,
    so concurrent creates of one recipe leave one row)."""
    with locks.exclusive(lake.uri, "catalog", "snapshot create", wait_s=CATALOG_WAIT_S):
        if not _recorded(lake, manifest["snapshot_id"]):
            _record(lake, manifest)


def _record(lake: Lake, manifest: dict) -> None:
    row = {
        "snapshot_id": manifest["snapshot_id"],
        "name": manifest["name"],
        "message": manifest["message"],
        "created_at": datetime.fromisoformat(manifest["created_at"]),
        "row_count": manifest["row_count"],
        "content_sha256": manifest["content_sha256"],
        "input_versions": json.dumps(manifest["recipe"]["input_versions"], sort_keys=True),
        "recipe_sha256": manifest["recipe_sha256"],
    }
    write_deltalake(
        lake.table_uri(SNAPSHOTS.name),
        pa.Table.from_pylist([row], schema=SNAPSHOTS.schema),
        mode="append",
        storage_options=storage.delta_storage_options(),
        commit_properties=CommitProperties(custom_metadata={"mermaid.sources": manifest["snapshot_id"]}),
    )


def _step6_counted(con: duckdb.DuckDBPyConnection, recipe: Recipe, sql: queries.SnapshotSql) -> list[tuple]:
    """Step 6's outcome per (site, source) by a pass of its own: kept (reason NULL) and missing."""
    rows = con.execute(sql.feature_counts, _params(recipe)).fetchall()
    return [(site, src, reason, None, n) for site, src, reason, n in rows]


def _step6_from_written(groups: list[tuple], after: pa.Table) -> list[tuple]:
    """Step 6's outcome without a pass of its own (no limit): every annotation that reached it (the
    label groups steps 1-5 kept) and was not written had no feature object."""
    reached: dict[tuple[str, str], int] = {}
    for site, src, reason, _label, n in groups:
        if reason is None:
            reached[(site, src)] = reached.get((site, src), 0) + n
    written = dict(zip(zip(after.column("site").to_pylist(), after.column("source_id").to_pylist()),
                       after.column("annotations_after").to_pylist()))
    out = []
    for (site, src), n in sorted(reached.items()):
        kept = written.get((site, src), 0)
        out.append((site, src, None, None, kept))
        if n > kept:
            out.append((site, src, "missing_features", None, n - kept))
    return out


def _stage_summary(counts) -> dict:
    dropped: dict[str, int] = {}
    kept_by_site: dict[str, int] = {}
    total = 0
    for site, _source, reason, _label, n in counts:
        total += n
        if reason is None:
            kept_by_site[site] = kept_by_site.get(site, 0) + n
        else:
            dropped[reason] = dropped.get(reason, 0) + n
    return {"total": total, "dropped": dropped, "kept_by_site": kept_by_site}


def _stage_table(stage: dict) -> list[dict]:
    remaining = stage["total"]
    rows = [{"step": "0 lake", "reason": "", "dropped": 0, "remaining": remaining}]
    for reason, step in STAGES:
        n = stage["dropped"].get(reason, 0)
        remaining -= n
        rows.append({"step": step, "reason": reason, "dropped": n, "remaining": remaining})
    return rows


def _check_missing_features(con, recipe: Recipe, stage: dict, sql: queries.SnapshotSql) -> None:
    missing = stage["dropped"].get("missing_features", 0)
    reaching = missing + sum(stage["kept_by_site"].values())
    allowed = recipe.options["missing_features_allowed"]
    if reaching and missing * 100.0 / reaching > allowed:
        examples = con.execute(sql.missing_feature_examples, _params(recipe)).fetchall()
        listed = "; ".join(f"{site}/{source}: {key}" for site, source, _image, key in examples)
        raise SnapshotError(
            f"{missing:,} of {reaching:,} annotations ({missing * 100.0 / reaching:.1f}%) have no feature object, "
            f"more than the {allowed:g}% allowed (e.g. {listed})",
            fix="ingest the missing feature files, or raise --missing-features-allowed "
            "(MERMAID_MISSING_FEATURES_ALLOWED)",
        )


def _reports(con, counts, stage, after: pa.Table, sql: queries.SnapshotSql) -> dict[str, str]:
    """The CSV reports written beside the rows (training logs them as run artifacts)."""
    import polars as pl

    def csv(sql: str, params=None) -> str:
        return pl.from_arrow(con.execute(sql, params).to_arrow_table()).write_csv()

    reports = {name: csv(sql.reports[name]) for name in ("ba_counts.csv", "bagf_counts.csv", "label_mapping.csv")}
    dropped_rows = pl.DataFrame(
        [{"source_id": src, "reason": r, "label_id": lab, "annotations": n} for _s, src, r, lab, n in counts],
        schema={"source_id": pl.String, "reason": pl.String, "label_id": pl.String, "annotations": pl.Int64},
        orient="row",
    )
    reports["unmapped_labels.csv"] = (
        dropped_rows.filter(pl.col("reason") == "unmapped_label")
        .group_by("source_id", "label_id").agg(pl.col("annotations").sum())
        .sort(["annotations", pl.col("source_id").cast(pl.Int64), pl.col("label_id").cast(pl.Int64)],
              descending=[True, False, False])
        .write_csv()
    )
    # "before" is counted on the pinned annotations: summing the per-reason image counts of `counts`
    # would count an image once per drop reason its rows have.
    before = pl.from_arrow(con.execute(sql.reports["project_before"]).to_arrow_table())
    stats = (
        before.with_columns(pl.col("images_before").cast(pl.Int64), pl.col("annotations_before").cast(pl.Int64))
        .join(pl.from_arrow(after), on=["site", "source_id"], how="left")
        .with_columns(pl.col("images_after").fill_null(0), pl.col("annotations_after").fill_null(0))
        .sort("site", "source_id")
    )
    reports["project_stats.csv"] = stats.write_csv()
    dropped = pl.DataFrame(_stage_table(stage)).filter(pl.col("reason") != "")
    reports["dropped_by_reason.csv"] = dropped.write_csv()
    return reports
