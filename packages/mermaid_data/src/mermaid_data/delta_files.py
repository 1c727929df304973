"""Parquet files encoded in parallel threads and committed to a Delta table in one transaction.

deltalake's ``write_deltalake`` encodes one input stream and re-sorts every batch by the partition
columns before splitting it. The ingest already has its rows grouped by partition (one CoralNet
source, or a MERMAID chunk), so it hands each partition's rows to ``PartitionWriter.submit``; worker
threads build and encode the files with pyarrow (which releases the GIL) and upload them, and
``commit`` records them all in one Delta commit (``create_write_transaction``, or
``create_table_with_add_actions`` for a new table). The commit is what makes them visible: files of an
ingest that fails before it are unreferenced, as with ``write_deltalake``, and ``vacuum`` removes them;
their names carry the writer's ``tag`` so the next ingest can remove those of a writer that died.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema
from deltalake.transaction import AddAction, create_table_with_add_actions

from mermaid_data import storage
from mermaid_data.sqlfiles import sql_literal
from mermaid_data.tables import TableSpec

#: zstd level 1 writes faster than snappy here and makes files ~40% smaller.
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1
#: Columns whose values are (nearly) unique: a dictionary page for them is wasted work.
NO_DICTIONARY = frozenset({"annotation_id"})
#: Row groups of the files pyarrow writes. DuckDB's `COPY` keeps its default (122,880 rows): 1M-row
#: groups made its writer 1.5-2.5x slower (MERMAID's 5M rows: 4.4 s -> 3.0 s at the default).
ROW_GROUP_ROWS = 1 << 20
_MAX_PENDING = 8  # files being built or uploaded at once (bounds memory)


class PartitionWriter:
    """Collect one commit's files for ``spec``'s table at ``table_uri``; see the module docstring."""

    def __init__(self, table_uri: str, spec: TableSpec, *, workers: int = 2, tag: str = "") -> None:
        self.table_uri = table_uri
        self.tag = f"{tag}-" if tag else ""
        self.root = storage.Uri.parse(table_uri)
        self.spec = spec
        self.partition_by = list(spec.partition_by)
        self.data_schema = pa.schema([f for f in spec.schema if f.name not in self.partition_by])
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="parquet")
        self._pending: deque[Future] = deque()
        self._done: list[AddAction] = []

    def submit(self, partition: dict[str, str], build: Callable[[], pa.Table]) -> None:
        """Write the table ``build()`` returns (the spec's columns) as one file of ``partition``."""
        while len(self._pending) >= _MAX_PENDING:
            self._done.append(self._pending.popleft().result())
        self._pending.append(self._pool.submit(self._write_one, dict(partition), build))

    def copy_from_duckdb(self, con, query: str, params: dict, partition: dict[str, str]) -> int:
        """Write ``query``'s rows (the spec's data columns, no partition columns) as files of
        ``partition`` with DuckDB's own parallel Parquet writer (one file per DuckDB thread), straight
        to the table's storage; return the row count. DuckDB reports each file's size, rows and
        column statistics (``RETURN_STATS``), so nothing is read back."""
        folder = f"{self._partition_folder(partition)}/ingest-{self.tag}{uuid.uuid4().hex}"
        target = str(self.root.join(*folder.split("/")))
        if not self.root.is_s3:  # DuckDB creates the last folder only
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        rows = con.execute(
            f"COPY ({query}) TO {sql_literal(target)} (FORMAT parquet, COMPRESSION "
            f"{COMPRESSION}, COMPRESSION_LEVEL {COMPRESSION_LEVEL}, "
            "PER_THREAD_OUTPUT true, RETURN_STATS true)",
            params,
        ).fetchall()
        total = 0
        for filename, count, size, _footer, columns, _keys in rows:
            name = str(filename).rstrip("/").rsplit("/", 1)[-1]
            self._done.append(AddAction(
                path=f"{folder}/{name}",
                size=int(size),
                partition_values={column: partition[column] for column in self.partition_by},
                modification_time=int(time.time() * 1000),
                data_change=True,
                stats=json.dumps(_duckdb_stats(columns, int(count), self.data_schema), separators=(",", ":")),
            ))
            total += int(count)
        return total

    def commit(self, table: DeltaTable | None, *, replace: dict[str, list[str]],
               commit_properties: CommitProperties) -> None:
        """Record every submitted file in one commit to ``table`` (None: create the table), replacing
        the partitions in ``replace``: partition columns mapped to the values whose existing files the
        commit removes, e.g. ``{"site": ["coralnet"], "source_id": ["23", "24"]}``.
        """
        try:
            while self._pending:
                self._done.append(self._pending.popleft().result())
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        actions = sorted(self._done, key=lambda a: a.path)
        if table is None:
            create_table_with_add_actions(
                self.table_uri,
                Schema.from_arrow(self.spec.schema),
                actions,
                mode="error",
                partition_by=self.partition_by,
                storage_options=storage.delta_storage_options(),
                commit_properties=commit_properties,
            )
            return
        filters = [(column, "in", list(values)) for column, values in replace.items()]
        table.create_write_transaction(
            actions,
            mode="overwrite" if filters else "append",
            schema=self.spec.schema,
            partition_by=self.partition_by,
            partition_filters=filters or None,
            commit_properties=commit_properties,
        )

    def abort(self) -> None:
        """Stop the workers (files already written stay unreferenced until ``vacuum``)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _partition_folder(self, partition: dict[str, str]) -> str:
        return "/".join(f"{column}={quote(partition[column], safe='')}" for column in self.partition_by)

    def _write_one(self, partition: dict[str, str], build: Callable[[], pa.Table]) -> AddAction:
        table = build().select(self.data_schema.names).cast(self.data_schema)
        sink = pa.BufferOutputStream()
        pq.write_table(
            table,
            sink,
            row_group_size=ROW_GROUP_ROWS,
            compression=COMPRESSION,
            compression_level=COMPRESSION_LEVEL,
            use_dictionary=[n for n in self.data_schema.names if n not in NO_DICTIONARY],
            write_statistics=True,
        )
        data = sink.getvalue()
        folder = self._partition_folder(partition)
        name = f"part-{self.tag}{uuid.uuid4().hex}.{COMPRESSION}.parquet"
        relative = f"{folder}/{name}" if folder else name
        storage.write_bytes(self.root.join(*relative.split("/")), data.to_pybytes())
        stats = file_stats(pq.read_metadata(pa.BufferReader(data)), table.num_rows)
        return AddAction(
            path=relative,
            size=data.size,
            partition_values={column: partition[column] for column in self.partition_by},
            modification_time=int(time.time() * 1000),
            data_change=True,
            stats=json.dumps(stats, separators=(",", ":")),
        )


def file_stats(metadata: pq.FileMetaData, num_rows: int) -> dict:
    """Delta's per-file statistics from the Parquet footer: row count, null counts, and min/max of
    integer and string columns (timestamps are left out; Delta allows partial statistics)."""
    schema = metadata.schema.to_arrow_schema()
    mins: dict = {}
    maxs: dict = {}
    nulls: dict = {}
    for index, field in enumerate(schema):
        groups = [metadata.row_group(g).column(index).statistics for g in range(metadata.num_row_groups)]
        if any(s is None for s in groups):
            continue
        nulls[field.name] = sum(int(s.null_count) for s in groups)
        if not (pa.types.is_integer(field.type) or pa.types.is_string(field.type)):
            continue
        bounded = [s for s in groups if s.has_min_max]
        if len(bounded) == len(groups) and bounded:
            mins[field.name] = min(s.min for s in bounded)
            maxs[field.name] = max(s.max for s in bounded)
    return {"numRecords": num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}


def _duckdb_stats(columns: dict, num_rows: int, schema: pa.Schema) -> dict:
    """Delta's per-file statistics from DuckDB's ``RETURN_STATS``: row count, null counts and min/max of
    integer columns (DuckDB may shorten string bounds, so strings and timestamps are left out)."""
    mins: dict = {}
    maxs: dict = {}
    nulls: dict = {}
    for field in schema:
        stats = columns.get(f'"{field.name}"') or columns.get(field.name)
        if not stats:
            continue
        if "null_count" in stats:
            nulls[field.name] = int(stats["null_count"])
        if pa.types.is_integer(field.type) and "min" in stats and "max" in stats:
            mins[field.name] = int(stats["min"])
            maxs[field.name] = int(stats["max"])
    return {"numRecords": num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}
