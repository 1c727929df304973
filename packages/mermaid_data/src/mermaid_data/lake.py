"""The lake: Delta tables under ``<lake>/tables/<name>/``, queried with DuckDB over pinned versions."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from mermaid_data import duck, storage
from mermaid_data.errors import OS_ERRORS, LakeError, StorageError
from mermaid_data.settings import get_settings
from mermaid_data.sqlfiles import load_sql
from mermaid_data.tables import TABLES, TableSpec

#: Views defined in sql/views/, created in this order on top of the table scans.
DERIVED_VIEWS = (
    "annotations",
    "label_mapping_resolved",
    "label_mapping_conflicts",
    "annotations_labelled",
    "annotations_mapped",
    "unmapped_annotations",
)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Lake:
    """A lake at a URI (local directory or ``s3://bucket/prefix``)."""

    uri: storage.Uri

    @classmethod
    def open(cls, uri: str | None = None) -> Lake:
        """Open the lake at ``uri`` (default: the ``MERMAID_LAKE_URI`` setting, ``./lake``)."""
        return cls(storage.Uri.parse(uri or get_settings().lake_uri))

    def __str__(self) -> str:
        return str(self.uri)

    # ---- Delta tables -------------------------------------------------------------------------

    def table_uri(self, name: str) -> str:
        return str(self.uri.join("tables", name))

    def delta(self, name: str, version: int | None = None) -> DeltaTable | None:
        """The Delta table ``name`` (at ``version``), or None if it was never written."""
        try:
            return DeltaTable(
                self.table_uri(name), version=version, storage_options=storage.delta_storage_options()
            )
        except TableNotFoundError:
            return None
        except Exception as exc:  # deltalake raises plain errors for bad versions and I/O
            if "not found" in str(exc).lower() and version is None:
                return None
            if version is not None and "version" in str(exc).lower():
                raise LakeError(
                    f"table {name!r} has no version {version}",
                    where=self.table_uri(name),
                    fix="run `mermaid-data history` to see the versions that exist",
                ) from exc
            raise LakeError(
                f"cannot read table {name!r}: {exc}",
                where=self.table_uri(name),
                fix="check the lake URI and storage credentials",
            ) from exc

    def exists(self) -> bool:
        """True once ``ingest`` has committed the annotations table."""
        return self.delta("annotations") is not None

    def require(self) -> None:
        """Refuse a lake that does not exist, naming the lakes below the current folder if any."""
        self._refuse_a_file()
        if self.exists():
            return
        found = [] if self.uri.is_s3 else [p for p in find_lakes(Path.cwd()) if str(p) != self.uri.key]
        if not found:
            raise LakeError(
                "no lake here (no annotations table)",
                where=str(self.uri),
                fix="run `mermaid-data ingest --lake URI` first, or pass the right --lake / MERMAID_LAKE_URI",
            )
        names = [os.path.relpath(p) for p in found]
        shown = ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")
        raise LakeError(
            f"no lake here (no annotations table); found {len(names)} lake(s) below this folder: {shown}",
            where=str(self.uri),
            fix=f"pass --lake {names[0]} (or set MERMAID_LAKE_URI={names[0]}), "
                "or run `mermaid-data ingest --lake URI` to make a new one",
        )

    def require_writable(self) -> None:
        """Refuse, before any work, a local lake location that cannot be written (a file, read-only)."""
        self._refuse_a_file()
        if self.uri.is_s3:
            return
        folder = Path(self.uri.key)
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            raise LakeError(f"cannot make the lake folder: {folder} is a file", where=str(self.uri),
                            fix="pass --lake a folder path (or MERMAID_LAKE_URI)")
        if not os.access(folder, os.W_OK):
            number = errno.EROFS if os.statvfs(folder).f_flag & os.ST_RDONLY else errno.EACCES
            problem, fix = OS_ERRORS[number]
            detail = "" if str(folder) == self.uri.key else f" ({folder}, where it would be made)"
            raise StorageError(f"cannot write the lake: {problem}{detail}", where=str(self.uri), fix=fix,
                               errno=number)

    def _refuse_a_file(self) -> None:
        if not self.uri.is_s3 and os.path.isfile(self.uri.key):
            raise LakeError("is a file, not a lake folder", where=str(self.uri),
                            fix="pass --lake the lake's folder (or MERMAID_LAKE_URI), or a new folder to make one")

    def versions(self) -> dict[str, int]:
        """Current Delta version of every table that exists."""
        out = {}
        for name in TABLES:
            table = self.delta(name)
            if table is not None:
                out[name] = table.version()
        return out

    def versions_as_of(self, as_of: int | str | datetime) -> dict[str, int]:
        """Pinned versions for ``--as-of``: an annotations version (others as of its commit time) or a time."""
        if isinstance(as_of, int) or (isinstance(as_of, str) and as_of.isdigit()):
            version = int(as_of)
            annotations = self.delta("annotations")
            if annotations is None or version > annotations.version() or version < 0:
                latest = annotations.version() if annotations else "none"
                raise LakeError(
                    f"annotations has no version {version} (latest: {latest})",
                    where=self.table_uri("annotations"),
                    fix="run `mermaid-data history` to list versions",
                )
            stamps = {e["version"]: e["timestamp"] for e in annotations.history()}
            stamp = stamps[version]
            # Ingest commits features and `sources` (last) after annotations: pin the other tables as of
            # the end of the ingest that wrote this version, its first `sources` commit at or after it.
            sources = self.delta("sources")
            later = [e["timestamp"] for e in sources.history() if e["timestamp"] >= stamp] if sources else []
            moment = datetime.fromtimestamp((min(later) if later else stamp) / 1000, tz=UTC)
            pinned = {"annotations": version}
        else:
            moment = as_of if isinstance(as_of, datetime) else datetime.fromisoformat(str(as_of))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            pinned = {}
        cutoff_ms = moment.timestamp() * 1000
        for name in TABLES:
            if name in pinned:
                continue
            table = self.delta(name)
            if table is None:
                continue
            older = [e["version"] for e in table.history() if e["timestamp"] <= cutoff_ms]
            if older:
                pinned[name] = max(older)
        return pinned

    def read(self, name: str, columns: list[str] | None = None) -> pa.Table | None:
        """The current rows of table ``name`` (or None if it was never written), read by DuckDB.

        Small tables only (``sources``, ``snapshots``). deltalake's own ``to_pyarrow_table`` leaves a
        native reader thread behind that sometimes aborts the interpreter at exit ("terminate called
        without an active exception", exit status 134) after the command has done its work.
        """
        table = self.delta(name)
        if table is None:
            return None
        spec = TABLES[name]
        con = duck.connect(s3=self.uri.is_s3)
        try:
            _create_scan_view(con, "t", spec, table)
            cols = ", ".join(f'"{c}"' for c in (columns or spec.schema.names))
            return con.execute(f"SELECT {cols} FROM t").to_arrow_table()
        finally:
            con.close()

    # ---- DuckDB -------------------------------------------------------------------------------

    def connect(self, versions: Mapping[str, int] | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with a view per table (at ``versions`` if given) and the derived views.

        A table missing from ``versions`` (when given) is read as empty: it did not exist then.
        """
        con = duck.connect(s3=self.uri.is_s3)
        for name, spec in TABLES.items():
            if versions is None:
                table = self.delta(name)
            elif name in versions:
                table = self.delta(name, versions[name])
            else:
                table = None
            view = "annotations_stored" if name == "annotations" else name
            _create_scan_view(con, view, spec, table)
        con.execute(load_sql("views/macros"))
        for view in DERIVED_VIEWS:
            con.execute(f"CREATE VIEW {view} AS {load_sql(f'views/{view}')}")
        # `SELECT * FROM snapshot('snap-…')`: a published snapshot's rows by ID.
        root = _quote(str(self.uri.join("snapshots")) + "/")
        con.execute(
            f"CREATE MACRO snapshot(snapshot_id) AS TABLE "
            f"SELECT * FROM read_parquet({root} || snapshot_id || '/rows.parquet')"
        )
        return con

    def sql(
        self,
        query: str,
        params: list[Any] | dict[str, Any] | None = None,
        *,
        as_of: int | str | datetime | None = None,
    ) -> pl.DataFrame:
        """Run one query over the lake's views and return a polars DataFrame."""
        self.require()
        versions = self.versions_as_of(as_of) if as_of is not None else None
        con = self.connect(versions)
        try:
            result = con.execute(query, params) if params else con.execute(query)
            return pl.from_arrow(result.to_arrow_table())
        except duckdb.Error as exc:
            raise LakeError(
                f"query failed: {str(exc).splitlines()[0]}",
                fix="check the SQL; `mermaid-data sql \"SHOW TABLES\"` lists the views",
            ) from exc
        finally:
            con.close()

    def create_snapshot(self, spec, *, dry_run: bool = False, progress=None):
        """Build (or find) the snapshot of ``spec`` (a ``SnapshotSpec``); see mermaid_data.snapshot."""
        from mermaid_data.snapshot import create_snapshot

        return create_snapshot(self, spec, dry_run=dry_run, progress=progress)

    def history(self) -> pl.DataFrame:
        """Every table's Delta versions: time, operation, rows added/removed and which sources."""
        rows = []
        for name in TABLES:
            table = self.delta(name)
            if table is None:
                continue
            for entry in table.history():
                metrics = entry.get("operationMetrics") or {}
                rows.append(
                    {
                        "table": name,
                        "version": int(entry["version"]),
                        "timestamp": datetime.fromtimestamp(entry["timestamp"] / 1000, tz=UTC),
                        "operation": entry.get("operation", ""),
                        "rows_added": int(entry.get("mermaid.rows_added") or metrics.get("num_added_rows", 0) or 0),
                        "rows_removed": int(entry.get("mermaid.rows_removed", 0) or 0),
                        "sources": entry.get("mermaid.sources", ""),
                    }
                )
        frame = pl.DataFrame(
            rows,
            schema={
                "table": pl.String,
                "version": pl.Int64,
                "timestamp": pl.Datetime("us", "UTC"),
                "operation": pl.String,
                "rows_added": pl.Int64,
                "rows_removed": pl.Int64,
                "sources": pl.String,
            },
        )
        return frame.sort(["table", "version"])


def _create_scan_view(
    con: duckdb.DuckDBPyConnection, view: str, spec: TableSpec, table: DeltaTable | None
) -> None:
    """Create ``view`` reading the Delta table's current files with DuckDB's native Parquet reader."""
    columns = ", ".join(f'"{f.name}"' for f in spec.schema)
    files = table.file_uris() if table is not None else []
    if not files:
        empty = pa.Table.from_batches([], schema=spec.schema)
        con.register(f"__empty_{view}", empty)
        con.execute(f"CREATE VIEW {view} AS SELECT {columns} FROM __empty_{view}")
        return
    file_list = "[" + ", ".join(_quote(f) for f in files) + "]"
    if spec.partition_by:
        hive_types = ", ".join(f"'{c}': VARCHAR" for c in spec.partition_by)
        options = f"hive_partitioning = true, hive_types = {{{hive_types}}}"
    else:
        options = "hive_partitioning = false"
    con.execute(f"CREATE VIEW {view} AS SELECT {columns} FROM read_parquet({file_list}, {options})")


#: How far below the current folder ``find_lakes`` looks, and how many folders it reads at most.
LAKE_SEARCH_DEPTH = 3
LAKE_SEARCH_FOLDERS = 2000


def find_lakes(root: Path, depth: int = LAKE_SEARCH_DEPTH, budget: int = LAKE_SEARCH_FOLDERS) -> list[Path]:
    """Lakes (folders holding ``tables/annotations/_delta_log``) up to ``depth`` levels below ``root``.

    Breadth first, sorted, skipping hidden folders; it reads at most ``budget`` folders (fast anywhere).
    """
    found: list[Path] = []
    level = [root]
    for level_no in range(depth + 1):
        below: list[Path] = []
        for folder in level:
            if _is_lake(folder):
                found.append(folder)
                continue
            for child in _subfolders(folder) if level_no < depth else ():
                if budget <= 0:
                    return sorted(found)
                budget -= 1
                below.append(child)
        level = below
    return sorted(found)


def _is_lake(folder: Path) -> bool:
    try:
        return (folder / "tables" / "annotations" / "_delta_log").is_dir()
    except OSError:  # unreadable (e.g. /proc entries): not a lake we can use
        return False


def _subfolders(folder: Path) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        try:
            if not entry.name.startswith((".", "__")) and entry.is_dir(follow_symlinks=False):
                yield Path(entry.path)
        except OSError:
            continue


def commit_metadata(sources: list[str], rows_removed: int = 0) -> dict[str, str]:
    """Custom commit info recorded with each write, shown by ``mermaid-data history``."""
    text = ",".join(sources)
    if len(text) > 500:
        text = ",".join(sources[:50]) + f",... ({len(sources)} sources)"
    return {"mermaid.sources": text, "mermaid.rows_removed": str(rows_removed)}


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
