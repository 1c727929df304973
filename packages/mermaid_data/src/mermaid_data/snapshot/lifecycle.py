"""Published snapshots: list, resolve, show, verify, rebuild, diff, export; and a safe vacuum.

``vacuum`` runs under the lake's writer lock (no ingest meanwhile, and no second vacuum) and deletes
every data file that neither the current version, the latest lake version, a published snapshot nor
an in-flight create or rebuild (its lease) needs: superseded versions and the files a killed ingest
wrote but never committed. It also deletes what dead creates and rebuilds left under ``snapshots/``.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from mermaid_data import duck, health, locks, storage
from mermaid_data.errors import ConfigError, MermaidDataError, SnapshotError
from mermaid_data.lake import Lake, LakeVersion
from mermaid_data.snapshot.build import (
    MANIFEST_FILE,
    ROWS_FILE,
    build,
    content_digest,
    read_manifest,
    reclaim_scratch,
    snapshot_uri,
    snapshots_root,
)
from mermaid_data.snapshot.recipe import ID_PREFIX, Recipe, current_sql_hashes
from mermaid_data.sqlfiles import load_sql, sql_literal
from mermaid_data.tables import SNAPSHOTS, SOURCES, TABLES


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
    """The ``snapshots`` catalog, one row per ID (as the ``snapshots`` view), newest first."""
    table = lake.read(SNAPSHOTS.name)
    if table is None:
        return pl.DataFrame(schema={f.name: pl.String for f in SNAPSHOTS.schema})
    frame = pl.from_arrow(table).sort("created_at", "name", "message")
    return frame.unique("snapshot_id", keep="first", maintain_order=True).sort("created_at", descending=True)


def verify(location: str, lake: Lake | None = None) -> dict:
    """Re-hash every file of a snapshot folder (in a lake or exported) against its manifest.

    Also recomputes the row digest, checks that the manifest's ID is its recipe's and (for a folder
    named like an ID) the folder's name, and, in a lake (``lake``, or the folder's own
    ``<lake>/snapshots/<id>``), that the ``snapshots`` catalog has that ID with the same digest.
    Returns {"ok": bool, "problems": [...], "snapshot_id": ...}.
    """
    uri = storage.Uri.parse(location)
    data = read_manifest(uri)
    if data is None:
        raise SnapshotError("no manifest.json here", where=str(uri),
                            fix="pass a snapshot folder (<lake>/snapshots/<id>) or an exported copy")
    problems = []
    sid = data["snapshot_id"]
    try:
        derived = Recipe.from_manifest(data["recipe"]).snapshot_id
    except (KeyError, TypeError, ValueError, AttributeError):
        derived = None
    if derived != sid:
        problems.append(f"manifest: its ID {sid} is not the ID of its recipe ({derived or 'unreadable recipe'})")
    if uri.name.startswith(ID_PREFIX) and uri.name != sid:
        problems.append(f"manifest: it names {sid} but the folder is {uri.name} (a copy of another snapshot?)")
    if lake is None and uri.parent.name == "snapshots":
        candidate = Lake(uri.parent.parent)
        lake = candidate if candidate.exists() else None
    if lake is not None:
        catalog = lake.read(SNAPSHOTS.name, ["snapshot_id", "content_sha256"])
        rows = [r for r in (catalog.to_pylist() if catalog is not None else []) if r["snapshot_id"] == sid]
        if not rows:
            problems.append(f"catalog: the lake's snapshots table has no row for {sid}")
        elif any(r["content_sha256"] != data["content_sha256"] for r in rows):
            problems.append(f"catalog: the snapshots table records another content_sha256 for {sid}")
    problems += file_problems(uri, data)
    if not any(p.startswith(ROWS_FILE) for p in problems):
        con = duck.connect(s3=uri.is_s3)
        try:
            con.execute(f"CREATE VIEW snapshot_rows AS SELECT * FROM read_parquet({sql_literal(str(uri.join(ROWS_FILE)))})")
            digest = content_digest(con)
        except duckdb.Error as exc:
            problems.append(f"{ROWS_FILE}: not readable Parquet ({str(exc).splitlines()[0]})")
            digest = None
        finally:
            con.close()
        if digest is not None and digest["content_sha256"] != data["content_sha256"]:
            problems.append("rows: content digest differs from the manifest's content_sha256")
    return {"ok": not problems, "problems": problems, "snapshot_id": sid}


def file_problems(folder: storage.Uri, data: dict, names=None, *, contents: dict[str, bytes] | None = None) -> list[str]:
    """The files of a snapshot folder that differ from its manifest ``data`` (SHA-256 per file): one
    ``"<name>: missing"`` or ``"<name>: SHA-256 … differs from the manifest's …"`` each.

    ``names`` limits the check to those files (default: every file the manifest lists); ``contents``
    gives bytes already read (an S3 object is then not downloaded twice).
    """
    problems = []
    wanted = sorted(data["files"]) if names is None else list(names)
    for name in wanted:
        expected = data["files"].get(name)
        if expected is None:
            problems.append(f"{name}: not listed in the manifest")
            continue
        target = folder.join(name)
        try:
            if contents is not None and name in contents:
                actual = hashlib.sha256(contents[name]).hexdigest()
            elif not target.is_s3:
                actual = storage.sha256_file(Path(target.key))
            else:
                actual = hashlib.sha256(storage.read_bytes(target)).hexdigest()
        except FileNotFoundError:
            problems.append(f"{name}: missing")
            continue
        if actual != expected:
            problems.append(f"{name}: SHA-256 {actual[:12]}… differs from the manifest's {expected[:12]}…")
    return problems


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
            state = "changed" if name in now_sql else "is no longer used"
            differences.append(f"sql/{name}.sql {state} since the snapshot was built")
    added = sorted(set(now_sql) - set(recipe.sql_sha256))
    if added:
        differences.append("SQL files the build uses now but did not then: " + ", ".join(f"sql/{n}.sql" for n in added))
    for table, version in sorted(recipe.input_versions.items()):
        try:
            readable = lake.delta(table, version) is not None
        except MermaidDataError:
            readable = False
        if not readable:
            differences.append(f"table {table} version {version} is no longer readable")
    with locks.lease(lake.uri, "snapshot rebuild", kind="rebuild", snapshot_id=sid,
                     versions=recipe.input_versions) as held:
        # one scratch folder per rebuild (they may run at once), named by its lease
        scratch = snapshots_root(lake).join(f".rebuild-{sid}-{held.token}")
        try:
            result = build(lake, recipe, old["name"], old["message"], scratch, publish=False)
            new = result.manifest
        except Exception as exc:
            storage.delete_prefix(scratch)
            # one problem and one fix: the failure's own (a damaged file names its remedy), the inputs
            # that changed since the snapshot was built as the reason
            own = isinstance(exc, MermaidDataError)
            problem = f"{exc.where}: {exc.problem}" if own and exc.where else (exc.problem if own else str(exc))
            why = f" ({'; '.join(differences)})" if differences else ""
            raise SnapshotError(f"rebuild of {sid} failed{why}: {problem}", where=str(lake.uri),
                                fix=(exc.fix if own and exc.fix else None)
                                or "restore the inputs listed, or rebuild from an export of the snapshot") from exc
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
                        f"{sql_literal(str(snapshot_uri(lake, sid).join(ROWS_FILE)))})")
        added, removed, changed = con.execute(load_sql("diff/rows")).fetchone()
        labels = pl.from_arrow(con.execute(load_sql("diff/labels")).to_arrow_table())
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
    """Copy a snapshot (rows, manifest, reports) to ``dest`` so `snapshot verify DEST` accepts it.

    ``dest`` must be new or an empty folder, and outside every lake: an export never overwrites
    anything (a published snapshot least of all). Locally the copy is made beside ``dest`` and renamed
    into place, so ``dest`` is either complete or absent.
    """
    sid = resolve(lake, snapshot_id)
    src = snapshot_uri(lake, sid)
    target = storage.Uri.parse(dest)
    _check_export_target(lake, target)
    data = read_manifest(src)
    names = (*sorted(data["files"]), MANIFEST_FILE)
    if target.is_s3 or src.is_s3:
        for name in names:
            storage.write_bytes(target.join(name), storage.read_bytes(src.join(name)))
        return str(target)
    final = Path(target.key)
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = final.with_name(f".{final.name}.export-{uuid.uuid4().hex[:8]}")
    try:
        scratch.mkdir()
        for name in names:
            shutil.copyfile(Path(src.key, name), scratch / name)
        os.rename(scratch, final)  # replaces only an empty folder; fails if anything appeared meanwhile
    except OSError as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        if final.exists():
            raise _export_refused(target, "is not empty") from exc
        raise
    return str(target)


def _export_refused(target: storage.Uri, why: str) -> ConfigError:
    return ConfigError(f"export destination {why}", where=str(target),
                       fix="export to a new or empty folder outside the lake (e.g. ~/datasets/NAME)")


def _is_lake_root(uri: storage.Uri) -> bool:
    marker = uri.join("tables", "sources", "_delta_log")
    if uri.is_s3:
        return any(True for _ in storage.list_prefix(marker, recursive=False))
    return Path(marker.key).is_dir() or Path(uri.key, "tables", "annotations").is_dir()


def _check_export_target(lake: Lake, target: storage.Uri) -> None:
    """Refuse a destination that holds anything, is a file, or lies inside a lake (this one or another)."""
    root = str(lake.uri).rstrip("/") + "/"
    if (str(target).rstrip("/") + "/").startswith(root):
        raise _export_refused(target, f"is inside the lake {lake.uri}")
    if target.is_s3:
        if any(True for _ in storage.list_prefix(target)):
            raise _export_refused(target, "is not empty")
        parts = target.key.split("/")
        ancestors = [storage.Uri("s3", target.bucket, "/".join(parts[:depth])) for depth in range(len(parts), -1, -1)]
    else:
        path = Path(target.key)
        if path.is_file():
            raise _export_refused(target, "is a file")
        if path.is_dir() and any(path.iterdir()):
            raise _export_refused(target, "is not empty")
        ancestors = [storage.Uri.parse(str(p)) for p in (path, *path.parents)]
    for ancestor in ancestors:
        if _is_lake_root(ancestor):
            raise _export_refused(target, f"is inside the lake {ancestor}")


def snapshot_lake_version(lake: Lake, data: dict, versions: list[LakeVersion] | None = None) -> LakeVersion | None:
    """The lake version snapshot ``data`` (its manifest) was built on: the last one committed at or before
    the snapshot's creation whose table versions are those its recipe pins (else the first such one);
    None if no lake version has them. It also pins ``sources`` (where each source's feature files were),
    which the recipe does not hash."""
    pinned = {table: int(version) for table, version in data["recipe"]["input_versions"].items()}
    candidates = [v for v in (lake.lake_versions() if versions is None else versions)
                  if all(v.tables.get(table) == version for table, version in pinned.items())]
    if not candidates:
        return None
    try:
        created = datetime.fromisoformat(str(data.get("created_at")))
    except ValueError:
        return candidates[0]
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    before = [v for v in candidates if v.committed_at <= created]
    return before[-1] if before else candidates[0]


def pinned_versions(lake: Lake) -> dict[str, set[int]]:
    """Every Delta version some published snapshot pins, per table, and the ``sources`` version of the
    lake version each was built on (training reads the feature roots there) — a damaged manifest raises:
    what it pins cannot be known."""
    pins: dict[str, set[int]] = {}
    versions: list[LakeVersion] | None = None
    for sid in published_ids(lake):
        data = read_manifest(snapshot_uri(lake, sid))
        for table, version in data["recipe"]["input_versions"].items():
            pins.setdefault(table, set()).add(int(version))
        versions = lake.lake_versions() if versions is None else versions
        built_on = snapshot_lake_version(lake, data, versions)
        if built_on is not None:
            pins.setdefault(SOURCES.name, set()).add(built_on.number)
    return pins


#: How long vacuum waits for a create that is appending to the catalog (a moment, normally).
CATALOG_WAIT_S = 120.0
UNFINISHED = "snapshots (unfinished)"


def vacuum(lake: Lake, *, dry_run: bool = False) -> dict[str, int]:
    """Delete the files no one needs (see the module docstring); return the count per table.

    Key ``UNFINISHED`` counts the files of dead creates' and rebuilds' scratch folders. A dry run takes
    no lock and writes nothing (so it also works on a lake you may only read).
    """
    with contextlib.nullcontext() if dry_run else locks.exclusive(lake.uri, "writer", "vacuum"):
        for name in TABLES:
            damaged = health.check_log(lake, name)
            if damaged is not None:
                raise damaged
        keep_versions = {name: set(v) for name, v in pinned_versions(lake).items()}
        live, stale = locks.leases(lake.uri)
        for held in stale:
            held.release()
        for held in live:
            for table, version in (held.content.get("versions") or {}).items():
                keep_versions.setdefault(table, set()).add(int(version))
        for table, version in lake.versions().items():
            keep_versions.setdefault(table, set()).add(version)
        removed: dict[str, int] = {}
        for name in TABLES:
            catalog = name == SNAPSHOTS.name and not dry_run
            with locks.exclusive(lake.uri, "catalog", "vacuum", wait_s=CATALOG_WAIT_S) if catalog else \
                    contextlib.nullcontext():
                removed[name] = _vacuum_table(lake, name, keep_versions.get(name, set()), dry_run)
        removed[UNFINISHED] = _count_unfinished(lake) if dry_run else reclaim_scratch(lake)
    return removed


def _count_unfinished(lake: Lake) -> int:
    live, stale = locks.leases(lake.uri)
    for held in stale:
        held.release()
    tokens = {held.token for held in live}
    root = snapshots_root(lake)
    if root.is_s3 or not Path(root.key).is_dir():
        return 0
    return sum(sum(1 for p in folder.rglob("*") if p.is_file()) for folder in Path(root.key).iterdir()
               if folder.is_dir() and folder.name.startswith((".tmp-", ".rebuild-"))
               and folder.name.rsplit("-", 1)[-1] not in tokens)


def _vacuum_table(lake: Lake, name: str, versions: set[int], dry_run: bool) -> int:
    """Delete the data files of ``name`` that neither its current version nor ``versions`` reference."""
    table = lake.delta(name)
    if table is None:
        return 0
    keep: set[str] = set()
    for version in {table.version(), *versions}:
        if version <= table.version():
            keep.update(item["path"] for item in health.referenced_files(lake, name, version))
    base = storage.Uri.parse(lake.table_uri(name))
    doomed = sorted(o.relative_key for o in storage.list_prefix(base)
                    if not o.relative_key.startswith(health.LOG_DIR + "/") and o.relative_key not in keep)
    if not dry_run:
        for rel in doomed:
            target = base.join(rel)
            if target.is_s3:
                storage.s3_client().delete_object(Bucket=target.bucket, Key=target.key)
            else:
                Path(target.key).unlink(missing_ok=True)
        if not base.is_s3:
            _remove_empty_folders(Path(base.key))
    return len(doomed)


def _remove_empty_folders(root: Path) -> None:
    for folder, _dirs, _files in sorted(os.walk(root), key=lambda item: -len(item[0])):
        if Path(folder) != root and health.LOG_DIR not in Path(folder).parts:
            with contextlib.suppress(OSError):
                Path(folder).rmdir()


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
