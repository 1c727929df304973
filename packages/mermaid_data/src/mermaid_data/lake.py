"""The lake: Delta tables under ``<lake>/tables/<name>/``, queried with DuckDB over pinned versions.

A **lake version** is one consistent state of every table: each completed ingest ends with one commit
of the ``sources`` table whose commit info records the Delta version of every table it left
(``LAKE_VERSION_KEY``); lake version N is ``sources`` version N. Readers (``sql``, ``--as-of``,
snapshots) pin a lake version, so the commits of an ingest that is still running, or that died, are
never seen.
"""

from __future__ import annotations

import errno
import json
import os
import re
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
from mermaid_data.errors import OS_ERRORS, LakeDamagedError, LakeError, ReadOnlyError, StorageError
from mermaid_data.settings import get_settings
from mermaid_data.sqlfiles import load_sql, sql_literal
from mermaid_data.tables import INGEST_TABLES, SNAPSHOTS, SOURCES, TABLES, TableSpec

#: Views defined in sql/views/, created in this order on top of the table scans.
DERIVED_VIEWS = (
    "annotations",
    "label_mapping_resolved",
    "label_mapping_conflicts",
    "annotations_labelled",
    "annotations_mapped",
    "unmapped_annotations",
    "snapshots",
)
#: Scan views of tables whose user-facing view is derived (sql/views/<name>.sql).
STORED_VIEWS = {"annotations": "annotations_stored", "snapshots": "snapshots_stored"}
#: Commit info of each ingest's final ``sources`` commit: JSON {table: Delta version} of every ingest table.
LAKE_VERSION_KEY = "mermaid.lake_versions"
INGEST_TABLE_NAMES = tuple(spec.name for spec in INGEST_TABLES)
#: Statements ``Lake.sql`` runs: reads only (SHOW, DESCRIBE, SUMMARIZE, PRAGMA show_tables parse as SELECT).
READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
_EXPLAIN_ANALYZE = re.compile(r"^\s*EXPLAIN\s+ANALY[SZ]E\b", re.IGNORECASE)
_FORCE = re.compile(r"\s*force\s", re.IGNORECASE)
#: DuckDB errors that are mistakes in the SQL: no lake file is checked for them (any other error, e.g.
#: "don't know what type" from a damaged Parquet footer, makes the pinned files be checked).
_SQL_MISTAKES = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException, duckdb.ConversionException,
                 duckdb.OutOfRangeException, duckdb.SyntaxException, duckdb.ConstraintException,
                 duckdb.TypeMismatchException, duckdb.NotImplementedException, duckdb.InvalidTypeException)
#: DuckDB messages that mean a file could not be read (as opposed to a mistake in the SQL).
_FILE_TROUBLE = re.compile(
    r"IO Error|magic bytes|Out of buffer|corrupt|decompress|zstd|snappy|thrift|TProtocol|Invalid data|"
    r"No files found|Cannot open file|truncated|parquet|footer|checksum", re.IGNORECASE)


@dataclass(frozen=True)
class LakeVersion:
    """One consistent state of the lake: the ``sources`` commit that ended an ingest and every table's
    Delta version at that moment."""

    number: int
    committed_at: datetime
    tables: dict[str, int]


def view_sql() -> list[str]:
    """The statements that create the derived views (sql/views/), in order, macros first."""
    return [load_sql("views/macros"), *(f"CREATE VIEW {view} AS {load_sql(f'views/{view}')}" for view in DERIVED_VIEWS)]


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
        """The Delta table ``name`` (at ``version``), or None if it was never written.

        A damaged Delta log raises ``LakeDamagedError`` naming the table, the version and the way back.
        """
        from mermaid_data import health

        try:
            return DeltaTable(
                self.table_uri(name), version=version, storage_options=storage.delta_storage_options()
            )
        except TableNotFoundError:
            damaged = health.diagnose_log(self, name)
            if damaged is not None:
                raise damaged from None
            return None
        except Exception as exc:  # deltalake raises plain errors for bad versions, damage and I/O
            damaged = health.diagnose_log(self, name)
            if damaged is not None:
                raise damaged from exc
            if "not found" in str(exc).lower() and version is None:
                return None
            if version is not None and "version" in str(exc).lower():
                raise LakeError(
                    f"table {name!r} has no version {version}",
                    where=self.table_uri(name),
                    fix="run `mermaid-data history` to see the versions that exist, or `mermaid-data ingest "
                    "--repair` if a lake version names it",
                ) from exc
            hint = ("check the lake URI and the storage credentials" if self.uri.is_s3 else
                    "see docs/lake.md, 'Damage and repair'")
            raise LakeError(f"cannot read table {name!r}: {str(exc).splitlines()[0]}",
                            where=self.table_uri(name), fix=hint) from exc

    def exists(self) -> bool:
        """True once an ingest has completed (its last commit is the ``sources`` table's)."""
        return self.delta(SOURCES.name) is not None

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

    def raw_versions(self) -> dict[str, int]:
        """Current Delta version of every table that exists (an ingest in flight may be ahead of the
        lake version; readers use ``versions()``)."""
        out = {}
        for name in TABLES:
            table = self.delta(name)
            if table is not None:
                out[name] = table.version()
        return out

    # ---- lake versions ------------------------------------------------------------------------

    def lake_versions(self) -> list[LakeVersion]:
        """Every lake version, oldest first (one per completed ingest)."""
        sources = self.delta(SOURCES.name)
        if sources is None:
            return []
        entries = sorted(sources.history(), key=lambda e: e["version"])
        return [self._lake_version(entry) for entry in entries]

    def lake_version(self) -> LakeVersion | None:
        """The latest lake version, or None before the first ingest completed."""
        sources = self.delta(SOURCES.name)
        if sources is None:
            return None
        return self._lake_version(sources.history(1)[0])

    def _lake_version(self, entry: dict) -> LakeVersion:
        number = int(entry["version"])
        stamp = datetime.fromtimestamp(entry["timestamp"] / 1000, tz=UTC)
        recorded = entry.get(LAKE_VERSION_KEY)
        if recorded:
            tables = {k: int(v) for k, v in json.loads(recorded).items()}
        else:  # written before lake versions were recorded: every table as of that commit's time
            tables = self._versions_at(entry["timestamp"])
        tables[SOURCES.name] = number
        return LakeVersion(number, stamp, tables)

    def _versions_at(self, cutoff_ms: float) -> dict[str, int]:
        pinned = {}
        for name in INGEST_TABLE_NAMES:
            table = self.delta(name)
            if table is None:
                continue
            older = [e["version"] for e in table.history() if e["timestamp"] <= cutoff_ms]
            if older:
                pinned[name] = max(older)
        return pinned

    def versions(self) -> dict[str, int]:
        """The table versions readers use: every ingest table at the latest lake version (so a running
        or dead ingest's commits are never seen), and the ``snapshots`` catalog at its latest."""
        latest = self.lake_version()
        out = dict(latest.tables) if latest is not None else {
            name: v for name, v in self.raw_versions().items() if name in INGEST_TABLE_NAMES}
        snapshots = self.delta(SNAPSHOTS.name)
        if snapshots is not None:
            out[SNAPSHOTS.name] = snapshots.version()
        return out

    def versions_as_of(self, as_of: int | str | datetime) -> dict[str, int]:
        """The table versions of lake version ``as_of`` (an integer), or of the latest lake version
        committed at or before ``as_of`` (a time)."""
        found = self.lake_versions()
        history_fix = "run `mermaid-data history` to list the lake versions (column lake_version)"
        if isinstance(as_of, int) or (isinstance(as_of, str) and as_of.strip().isdigit()):
            number = int(as_of)
            match = [v for v in found if v.number == number]
            if not match:
                latest = found[-1].number if found else "none"
                raise LakeError(f"the lake has no version {number} (latest: {latest})", where=str(self.uri),
                                fix=history_fix)
            return dict(match[0].tables)
        if isinstance(as_of, datetime):
            moment = as_of
        else:
            try:
                moment = datetime.fromisoformat(str(as_of).strip())
            except ValueError:
                raise LakeError(f"--as-of {as_of!r} is neither a lake version nor an ISO time", where=str(self.uri),
                                fix="pass a lake version number (e.g. --as-of 2) or a time such as "
                                "2026-01-31T12:00:00+00:00") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        before = [v for v in found if v.committed_at <= moment]
        if not before:
            first = found[0].committed_at.isoformat(timespec="seconds") if found else "none"
            raise LakeError(f"the lake has no version at or before {moment.isoformat()} (first: {first})",
                            where=str(self.uri), fix=history_fix)
        return dict(before[-1].tables)

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
        except duckdb.Error as exc:
            raise self.read_error(exc, {name: table.version()}) from exc
        finally:
            con.close()

    # ---- DuckDB -------------------------------------------------------------------------------

    def connect(self, versions: Mapping[str, int] | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with a view per table and the derived views (sql/views/).

        ``versions`` pins tables (default: ``versions()``, the latest lake version); an ingest table
        missing from it is read as empty (it did not exist then); the ``snapshots`` catalog is always
        read at its latest unless pinned. ``read_only`` locks the connection down (see ``sql``).
        """
        pinned = self.versions() if versions is None else dict(versions)
        con = duck.connect(s3=self.uri.is_s3)
        for name, spec in TABLES.items():
            if name in pinned:
                table = self.delta(name, pinned[name])
            elif name == SNAPSHOTS.name:
                table = self.delta(name)
            else:
                table = None
            try:
                _create_scan_view(con, STORED_VIEWS.get(name, name), spec, table)
            except duckdb.Error as exc:  # a referenced file is missing or unreadable: name it
                con.close()
                damaged = self.damage(exc, {name: table.version()} if table is not None else {})
                if damaged is None:
                    raise
                raise damaged from exc
        for statement in view_sql():
            con.execute(statement)
        # `SELECT * FROM snapshot('snap-…')`: a published snapshot's rows by ID.
        root = sql_literal(str(self.uri.join("snapshots")) + "/")
        con.execute(
            f"CREATE MACRO snapshot(snapshot_id) AS TABLE "
            f"SELECT * FROM read_parquet({root} || snapshot_id || '/rows.parquet')"
        )
        if read_only:
            _lock_down(con, self.uri)
        return con

    def sql(
        self,
        query: str,
        params: list[Any] | dict[str, Any] | None = None,
        *,
        as_of: int | str | datetime | None = None,
    ) -> pl.DataFrame:
        """Run one read-only query over the lake's views and return a polars DataFrame.

        Only reads run: a statement that would write (COPY, CREATE, EXPORT, INSERT...), attach a
        database, install or load an extension, or change a setting raises ``ReadOnlyError``, and DuckDB
        is locked down (no file outside the lake, no settings changes) behind that check.
        """
        _refuse_writes(query)
        self.require()
        versions = self.versions_as_of(as_of) if as_of is not None else self.versions()
        try:
            con = self.connect(versions, read_only=True)
            try:
                result = con.execute(query, params) if params else con.execute(query)
                return pl.from_arrow(result.to_arrow_table())
            except duckdb.Error as exc:
                raise self.read_error(exc, versions) from exc
            finally:
                con.close()
        except LakeDamagedError as exc:
            if as_of is None or "is missing" not in exc.problem or versions == self.versions():
                raise
            raise LakeError(
                f"lake version {as_of} is no longer readable: {exc.where} was deleted by vacuum (it keeps the "
                "latest lake version and the table versions published snapshots pin)",
                where=str(self.uri),
                fix="query a later lake version (see `mermaid-data history`) or a snapshot by ID",
            ) from exc

    def read_error(self, exc: duckdb.Error, versions: Mapping[str, int]) -> LakeError:
        """A DuckDB error as one line: a refused access, a damaged lake file (named), or a SQL mistake."""
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, duckdb.PermissionException):
            return ReadOnlyError(
                f"refused: {first.removeprefix('Permission Error: ')} (queries read the lake's own files only)",
                where=str(self.uri),
                fix="query the lake's views (`mermaid-data sql \"SHOW TABLES\"`); to combine with other files, "
                "save the result with --output and join it outside the lake",
            )
        damaged = self.damage(exc, versions)
        if damaged is not None:
            return damaged
        return LakeError(
            f"query failed: {first}",
            fix="check the SQL; `mermaid-data sql \"SHOW TABLES\"` lists the views",
        )

    def damage(self, exc: duckdb.Error, versions: Mapping[str, int]) -> LakeError | None:
        """For a DuckDB error that looks like an unreadable file: the damaged lake file, named (or None)."""
        from mermaid_data import health

        if isinstance(exc, _SQL_MISTAKES) and not _FILE_TROUBLE.search(str(exc)):
            return None
        damaged = health.find_damaged_files(self, versions, deep=True, first_only=True)
        return health.damaged_file_error(damaged[0]) if damaged else None

    def create_snapshot(self, spec, *, dry_run: bool = False, progress=None):
        """Build (or find) the snapshot of ``spec`` (a ``SnapshotSpec``); see mermaid_data.snapshot."""
        from mermaid_data.snapshot import create_snapshot

        return create_snapshot(self, spec, dry_run=dry_run, progress=progress)

    def history(self) -> pl.DataFrame:
        """Every table's Delta versions: time, operation, rows added/removed, which sources, and the
        lake version that first includes the commit (null: not part of a completed ingest)."""
        lake_versions = self.lake_versions()
        rows = []
        for name in TABLES:
            table = self.delta(name)
            if table is None:
                continue
            for entry in table.history():
                metrics = entry.get("operationMetrics") or {}
                version = int(entry["version"])
                included = [lv.number for lv in lake_versions if lv.tables.get(name, -1) >= version]
                rows.append(
                    {
                        "table": name,
                        "version": version,
                        "lake_version": (min(included) if included else None) if name in INGEST_TABLE_NAMES else None,
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
                "lake_version": pl.Int64,
                "timestamp": pl.Datetime("us", "UTC"),
                "operation": pl.String,
                "rows_added": pl.Int64,
                "rows_removed": pl.Int64,
                "sources": pl.String,
            },
        )
        return frame.sort(["table", "version"])


def _lock_down(con: duckdb.DuckDBPyConnection, lake: storage.Uri) -> None:
    """No files but the lake's, no extension installs or loads, no settings changes from here on."""
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"SET allowed_directories = [{sql_literal(str(lake).rstrip('/') + '/')}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _refuse_writes(query: str) -> None:
    """Raise ReadOnlyError for any statement of ``query`` that is not a read (parsed by a bare, locked
    connection: some statements touch files while they are parsed, e.g. IMPORT DATABASE)."""
    parser = duckdb.connect()
    try:
        parser.execute("SET enable_external_access = false")
        parser.execute("SET lock_configuration = true")
        statements = parser.extract_statements(query)
    except duckdb.Error as exc:
        raise LakeError(f"query failed: {str(exc).splitlines()[0]}",
                        fix="check the SQL; `mermaid-data sql \"SHOW TABLES\"` lists the views") from exc
    finally:
        parser.close()
    for number, statement in enumerate(statements, start=1):
        kind = statement.type
        analyze = kind == duckdb.StatementType.EXPLAIN and _EXPLAIN_ANALYZE.match(statement.query or "")
        if kind in READ_STATEMENTS and not analyze:
            continue
        what = "EXPLAIN ANALYZE (it runs the statement)" if analyze else kind.name.replace("_", " ")
        if kind == duckdb.StatementType.LOAD:  # DuckDB parses INSTALL as a LOAD statement: say what was written
            what = " ".join((statement.query or "LOAD").split()[:2 if _FORCE.match(statement.query or "") else 1]).upper()
        raise ReadOnlyError(
            f"statement {number} is {what}: SQL over the lake is read-only (SELECT, WITH, SHOW, DESCRIBE, "
            "SUMMARIZE, EXPLAIN)",
            fix="to save a result use --output FILE (Python: Lake.sql(...).write_parquet(...)); the lake changes "
            "only through `mermaid-data ingest`, `snapshot create` and `vacuum`",
        )


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
    file_list = "[" + ", ".join(sql_literal(f) for f in files) + "]"
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
