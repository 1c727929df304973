"""Published snapshots: list, resolve, show, verify, rebuild, diff, export; and a safe vacuum."""

from __future__ import annotations

import difflib
import hashlib
import json
import shutil
import uuid
from pathlib import Path

import duckdb
import polars as pl

from mermaid_data import duck, storage
from mermaid_data.errors import SnapshotError
from mermaid_data.lake import Lake
from mermaid_data.snapshot.build import (
    MANIFEST_FILE,
    ROWS_FILE,
    build,
    content_digest,
    read_manifest,
    snapshot_uri,
    snapshots_root,
)
from mermaid_data.snapshot.recipe import ID_PREFIX, Recipe, current_sql_hashes
from mermaid_data.tables import SNAPSHOTS


def published_ids(lake: Lake) -> list[str]:
    """IDs of every published snapshot (a folder with a manifest)."""
    root = snapshots_root(lake)
    if root.is_s3:
        names = storage.list_dirs(root)
    else:
        names = sorted(p.name for p in Path(root.key).glob(f"{ID_PREFIX}*") if p.is_dir())
    return [n for n in names if n.startswith(ID_PREFIX) and storage.exists(root.join(n, MANIFEST_FILE))]


def resolve(lake: Lake, snapshot_id: str) -> str:
    """A full ID from an ID or a unique prefix; unknown IDs list the nearest ones."""
    ids = published_ids(lake)
    wanted = snapshot_id if snapshot_id.startswith(ID_PREFIX) else ID_PREFIX + snapshot_id
    matches = [i for i in ids if i.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise SnapshotError(f"snapshot prefix {snapshot_id!r} is ambiguous ({', '.join(matches[:5])})",
                            where=str(lake.uri), fix="give more characters of the ID")
    near = difflib.get_close_matches(wanted, ids, n=3, cutoff=0.3) or ids[:3]
    raise SnapshotError(
        f"no snapshot {snapshot_id!r}" + (f"; nearest: {', '.join(near)}" if near else "; the lake has none"),
        where=str(lake.uri),
        fix="run `mermaid-data snapshot list` to see the published IDs",
    )


def manifest(lake: Lake, snapshot_id: str) -> dict:
    return read_manifest(snapshot_uri(lake, resolve(lake, snapshot_id)))


def list_snapshots(lake: Lake) -> pl.DataFrame:
    """The ``snapshots`` catalog table, newest first."""
    table = lake.read(SNAPSHOTS.name)
    if table is None:
        return pl.DataFrame(schema={f.name: pl.String for f in SNAPSHOTS.schema})
    return pl.from_arrow(table).sort("created_at", descending=True)


def verify(location: str) -> dict:
    """Re-hash every file of a snapshot folder (in a lake or exported) against its manifest.

    Returns {"ok": bool, "problems": [...], "snapshot_id": ...}; also recomputes the row digest.
    """
    uri = storage.Uri.parse(location)
    data = read_manifest(uri)
    if data is None:
        raise SnapshotError("no manifest.json here", where=str(uri),
                            fix="pass a snapshot folder (<lake>/snapshots/<id>) or an exported copy")
    problems = []
    for name, expected in sorted(data["files"].items()):
        target = uri.join(name)
        try:
            actual = (storage.sha256_file(Path(target.key)) if not target.is_s3
                      else hashlib.sha256(storage.read_bytes(target)).hexdigest())
        except FileNotFoundError:
            problems.append(f"{name}: missing")
            continue
        if actual != expected:
            problems.append(f"{name}: SHA-256 {actual[:12]}… differs from the manifest's {expected[:12]}…")
    if not any(p.startswith(ROWS_FILE) for p in problems):
        con = duck.connect(s3=uri.is_s3)
        try:
            con.execute(f"CREATE VIEW snapshot_rows AS SELECT * FROM read_parquet('{_esc(str(uri.join(ROWS_FILE)))}')")
            digest = content_digest(con)
        finally:
            con.close()
        if digest["content_sha256"] != data["content_sha256"]:
            problems.append("rows: content digest differs from the manifest's content_sha256")
    return {"ok": not problems, "problems": problems, "snapshot_id": data["snapshot_id"]}


def rebuild(lake: Lake, snapshot_id: str) -> dict:
    """Re-run a snapshot's recipe against its pinned versions and compare the digest.

    Returns {"identical": bool, "content_sha256": new, "expected": old, "differences": [...]}; the
    differences name the inputs that changed (SQL files, unreadable versions).
    """
    sid = resolve(lake, snapshot_id)
    old = read_manifest(snapshot_uri(lake, sid))
    recipe = Recipe.from_manifest(old["recipe"])
    differences = []
    now_sql = current_sql_hashes()
    for name, digest in sorted(recipe.sql_sha256.items()):
        if now_sql.get(name) != digest:
            differences.append(f"sql/{name}.sql changed since the snapshot was built")
    for table, version in sorted(recipe.input_versions.items()):
        if lake.delta(table, version) is None:
            differences.append(f"table {table} version {version} is no longer readable")
    scratch = snapshots_root(lake).join(f".rebuild-{sid}-{uuid.uuid4().hex[:8]}")  # one per rebuild: they may run at once
    storage.delete_prefix(scratch)
    try:
        result = build(lake, recipe, old["name"], old["message"], scratch, publish=False)
        new = result.manifest
    except Exception as exc:
        storage.delete_prefix(scratch)
        raise SnapshotError(f"rebuild of {sid} failed: {exc}", where=str(lake.uri),
                            fix="; ".join(differences) or "see the error above") from exc
    storage.delete_prefix(scratch)
    identical = new["content_sha256"] == old["content_sha256"]
    if not identical and not differences:
        for table, version in sorted(recipe.input_versions.items()):
            differences.append(f"rows differ although {table}@v{version} and every SQL file are unchanged")
            break
    return {"snapshot_id": sid, "identical": identical, "content_sha256": new["content_sha256"],
            "expected": old["content_sha256"], "row_count": new["row_count"],
            "expected_row_count": old["row_count"], "differences": differences}


def diff(lake: Lake, a: str, b: str) -> dict:
    """Rows and labels added/removed/changed between two snapshots, and the recipe inputs that differ."""
    ida, idb = resolve(lake, a), resolve(lake, b)
    ma, mb = read_manifest(snapshot_uri(lake, ida)), read_manifest(snapshot_uri(lake, idb))
    con = duck.connect(s3=lake.uri.is_s3)
    try:
        for alias, sid in (("a", ida), ("b", idb)):
            con.execute(f"CREATE VIEW {alias} AS SELECT * FROM read_parquet("
                        f"'{_esc(str(snapshot_uri(lake, sid).join(ROWS_FILE)))}')")
        added, removed, changed = con.execute(
            """
            SELECT count(*) FILTER (WHERE a.annotation_id IS NULL),
                   count(*) FILTER (WHERE b.annotation_id IS NULL),
                   count(*) FILTER (WHERE a.annotation_id IS NOT NULL AND b.annotation_id IS NOT NULL
                       AND (a.benthic_attribute_id <> b.benthic_attribute_id OR a.growth_form_id <> b.growth_form_id))
            FROM a FULL OUTER JOIN b ON a.annotation_id = b.annotation_id
            """
        ).fetchone()
        labels = pl.from_arrow(con.execute(
            """
            WITH ca AS (SELECT benthic_attribute_id || '::' || growth_form_id AS class_key, count(*) AS n FROM a GROUP BY 1),
                 cb AS (SELECT benthic_attribute_id || '::' || growth_form_id AS class_key, count(*) AS n FROM b GROUP BY 1)
            SELECT coalesce(ca.class_key, cb.class_key) AS class_key, coalesce(ca.n, 0) AS a, coalesce(cb.n, 0) AS b,
                   coalesce(cb.n, 0) - coalesce(ca.n, 0) AS delta
            FROM ca FULL OUTER JOIN cb ON ca.class_key = cb.class_key
            WHERE coalesce(ca.n, 0) <> coalesce(cb.n, 0)
            ORDER BY abs(delta) DESC, class_key
            """
        ).to_arrow_table())
    finally:
        con.close()
    ra, rb = ma["recipe"], mb["recipe"]
    inputs = []
    for section in ("input_versions", "specs", "options", "sql_sha256"):
        keys = sorted(set(ra.get(section, {})) | set(rb.get(section, {})))
        for key in keys:
            va, vb = ra.get(section, {}).get(key), rb.get(section, {}).get(key)
            if va != vb:
                inputs.append({"input": f"{section}.{key}", "a": va, "b": vb})
    if ra.get("semantics") != rb.get("semantics"):
        inputs.append({"input": "semantics", "a": ra.get("semantics"), "b": rb.get("semantics")})
    return {
        "a": ida, "b": idb, "rows_a": ma["row_count"], "rows_b": mb["row_count"],
        "rows_added": int(added), "rows_removed": int(removed), "rows_relabelled": int(changed),
        "labels_added": labels.filter(pl.col("a") == 0)["class_key"].to_list(),
        "labels_removed": labels.filter(pl.col("b") == 0)["class_key"].to_list(),
        "label_changes": labels, "recipe_differences": inputs,
    }


def export(lake: Lake, snapshot_id: str, dest: str) -> str:
    """Copy a snapshot (rows, manifest, reports) to ``dest`` so `snapshot verify DEST` accepts it."""
    sid = resolve(lake, snapshot_id)
    src = snapshot_uri(lake, sid)
    target = storage.Uri.parse(dest)
    data = read_manifest(src)
    for name in (*sorted(data["files"]), MANIFEST_FILE):
        if not src.is_s3 and not target.is_s3:
            Path(target.key).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(src.key, name), Path(target.key, name))
        else:
            storage.write_bytes(target.join(name), storage.read_bytes(src.join(name)))
    return str(target)


def pinned_versions(lake: Lake) -> dict[str, set[int]]:
    """Every Delta version some published snapshot pins, per table."""
    pins: dict[str, set[int]] = {}
    for sid in published_ids(lake):
        data = read_manifest(snapshot_uri(lake, sid))
        for table, version in data["recipe"]["input_versions"].items():
            pins.setdefault(table, set()).add(int(version))
    return pins


def vacuum(lake: Lake, *, dry_run: bool = False) -> dict[str, int]:
    """Delete Delta files no longer needed, except those of the current and every pinned version."""
    pins = pinned_versions(lake)
    removed: dict[str, int] = {}
    from mermaid_data.tables import TABLES

    for name in TABLES:
        table = lake.delta(name)
        if table is None:
            continue
        candidates = set(table.vacuum(retention_hours=0, dry_run=True, enforce_retention_duration=False))
        keep: set[str] = set()
        for version in pins.get(name, set()):
            keep.update(lake.delta(name, version).get_add_actions(flatten=True).column("path").to_pylist())
        base = storage.Uri.parse(lake.table_uri(name))
        # deltalake lists every tombstone in the log, also those a previous vacuum already deleted:
        # count (and delete) only the files still there, so a second vacuum reports 0.
        doomed = sorted(c for c in candidates if c not in keep and storage.exists(base.join(c)))
        removed[name] = len(doomed)
        if dry_run:
            continue
        for rel in doomed:
            target = base.join(rel)
            if target.is_s3:
                storage.s3_client().delete_object(Bucket=target.bucket, Key=target.key)
            else:
                Path(target.key).unlink(missing_ok=True)
    return removed


def _esc(text: str) -> str:
    return text.replace("'", "''")


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)


__all__ = [
    "diff",
    "duckdb",
    "dumps",
    "export",
    "list_snapshots",
    "manifest",
    "published_ids",
    "rebuild",
    "resolve",
    "vacuum",
    "verify",
]
