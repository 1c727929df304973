"""Naming damage: which Delta log version or which data file of which table is missing or broken.

``check_log`` reads every commit file of a table's ``_delta_log/`` and names the first one that is
missing, empty, not UTF-8, not JSON lines, or not Delta actions (``ingest`` and ``vacuum`` run it before
they change anything; ``Lake.delta`` runs it when deltalake cannot open a table). ``find_damaged_files``
checks the data files a set of table versions references: present with the size the log records, and
with ``deep`` also readable as Parquet to the last page. Each finding becomes one ``LakeDamagedError``
line that says how to recover.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from mermaid_data import storage
from mermaid_data.errors import LakeDamagedError

LOG_DIR = "_delta_log"
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(\.\d+\.\d+)?\.parquet$")
ACTIONS = frozenset({"commitInfo", "add", "remove", "metaData", "protocol", "txn", "domainMetadata", "cdc",
                     "checkpointMetadata", "sidecar"})
REPAIR = "run `mermaid-data ingest --repair` with the same sources: it re-ingests what is missing"


# --------------------------------------------------------------------------------------------------
# Delta logs
# --------------------------------------------------------------------------------------------------


def _log_files(lake, name: str) -> dict[str, int] | None:
    """{file name: size} of the table's ``_delta_log/``, or None if it has none."""
    folder = storage.Uri.parse(lake.table_uri(name)).join(LOG_DIR)
    if not folder.is_s3 and not Path(folder.key).is_dir():
        return None
    files = {o.relative_key: o.size for o in storage.list_prefix(folder, recursive=False)}
    return files or None


def _commit_problem(data: bytes) -> str | None:
    """Why a commit file is not a valid Delta commit, or None."""
    if not data.strip():
        return "is empty"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"holds bytes that are not UTF-8 text at offset {exc.start} (damaged bytes)"
    actions = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            action = json.loads(line)
        except ValueError as exc:
            return f"line {number} is not JSON ({exc.msg}; truncated or damaged)"
        if not isinstance(action, dict) or len(action) != 1 or next(iter(action)) not in ACTIONS:
            keys = list(action) if isinstance(action, dict) else type(action).__name__
            return f"line {number} is not a Delta action (found {keys})"
        kind, body = next(iter(action.items()))
        if kind == "add" and not (isinstance(body, dict) and isinstance(body.get("path"), str)
                                  and isinstance(body.get("size"), int)):
            return f"line {number} is an add action without a path and size"
        if kind == "add" and not _partition_matches(body):
            return f"line {number}: the file path {body['path']!r} disagrees with its partition values"
        actions += 1
    return None if actions else "holds no actions"


def _partition_matches(add: dict) -> bool:
    values = add.get("partitionValues") or {}
    folders = dict(part.split("=", 1) for part in unquote(add["path"]).split("/")[:-1] if "=" in part)
    return all(unquote(folders.get(k, v if v is not None else "")) == (v if v is not None else "")
               for k, v in values.items() if k in folders)


def check_log(lake, name: str) -> LakeDamagedError | None:
    """The first damaged or missing commit of table ``name``'s log, as an error; None if all are sound."""
    files = _log_files(lake, name)
    if files is None:
        return None
    folder = storage.Uri.parse(lake.table_uri(name)).join(LOG_DIR)
    commits = sorted((int(m.group(1)), f) for f in files if (m := _COMMIT.match(f)))
    checkpoints = sorted(int(m.group(1)) for f in files if (m := _CHECKPOINT.match(f)))
    if not commits and not checkpoints:
        return None
    last = max([v for v, _ in commits] + checkpoints)
    present = {v for v, _ in commits}
    # commits older than a checkpoint may have been cleaned up; from the earliest one kept, none is missing
    start = min(min(present, default=last), checkpoints[-1] + 1) if checkpoints else 0
    for version in range(start, last + 1):
        if version not in present and version not in checkpoints:
            return _log_error(lake, name, version, folder.join(f"{version:020d}.json"), "is missing", last)

    def read(item: tuple[int, str]) -> tuple[int, str, str | None]:
        version, file = item
        return version, file, _commit_problem(storage.read_bytes(folder.join(file)))

    with ThreadPoolExecutor(8) as pool:
        for version, file, problem in pool.map(read, commits):
            if problem:
                return _log_error(lake, name, version, folder.join(file), problem, last)
    for version in checkpoints[-1:]:
        path = folder.join(f"{version:020d}.checkpoint.parquet")
        if f"{version:020d}.checkpoint.parquet" in files:
            try:
                pq.read_metadata(pa.BufferReader(storage.read_bytes(path)))
            except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is damage
                return _log_error(lake, name, version, path, f"is not a readable checkpoint ({exc})", last)
    return None


def diagnose_log(lake, name: str) -> LakeDamagedError | None:
    """``check_log`` for the error path: never raises itself."""
    try:
        return check_log(lake, name)
    except Exception:  # noqa: BLE001 - diagnosing must not hide the original error
        return None


def _log_error(lake, name: str, version: int, uri: storage.Uri, problem: str, last: int) -> LakeDamagedError:
    if version == last:
        fix = (f"if you have a backup, restore that file; otherwise move it aside (`mv {uri} {uri}.damaged`, its "
               f"commit is lost) and {REPAIR}")
    else:
        fix = (f"restore that file from a backup (versions {version + 1}..{last} depend on it); without one, "
               "build a new lake from the sources (`mermaid-data ingest --lake NEW ...`)")
    return LakeDamagedError(f"table {name!r}: Delta log version {version} {problem}", where=str(uri), fix=fix,
                            table=name, version=version)


# --------------------------------------------------------------------------------------------------
# data files
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DamagedFile:
    """A data file a table version references that is missing or cannot be read."""

    table: str
    uri: str
    problem: str
    partition: dict[str, str] = field(default_factory=dict)


def referenced_files(lake, name: str, version: int) -> list[dict]:
    """The add actions of ``name``@``version``: uri, relative path, size, rows and partition values."""
    table = lake.delta(name, version)
    if table is None:
        return []
    actions = pa.table(table.get_add_actions(flatten=True))
    root = storage.Uri.parse(lake.table_uri(name))
    partition_columns = [c for c in actions.column_names if c.startswith("partition.")]
    out = []
    for row in actions.to_pylist():
        relative = unquote(row["path"])
        out.append({
            "uri": root.join(*relative.split("/")),
            "path": relative,
            "size": int(row["size_bytes"]),
            "rows": row.get("num_records"),
            "partition": {c.removeprefix("partition."): row[c] for c in partition_columns},
        })
    return out


def _listing(lake, name: str) -> dict[str, int]:
    root = storage.Uri.parse(lake.table_uri(name))
    return {o.relative_key: o.size for o in storage.list_prefix(root)}


def _unreadable(uri: storage.Uri) -> str | None:
    try:
        pq.read_table(pa.BufferReader(storage.read_bytes(uri)))
    except FileNotFoundError:
        return "is missing"
    except Exception as exc:  # noqa: BLE001 - any decoding failure is damage
        return f"is not readable Parquet ({str(exc).splitlines()[0]})"
    return None


def find_damaged_files(lake, versions: Mapping[str, int], *, deep: bool = False, first_only: bool = False,
                       tables: tuple[str, ...] | None = None) -> list[DamagedFile]:
    """Data files of the pinned ``versions`` that are missing, of the wrong size, or (``deep``) unreadable."""
    found: list[DamagedFile] = []
    for name, version in sorted(versions.items()):
        if tables is not None and name not in tables:
            continue
        try:
            files = referenced_files(lake, name, version)
        except Exception:  # noqa: BLE001, S112 - a damaged log is reported by check_log
            continue
        if not files:
            continue
        listing = _listing(lake, name)
        suspects = []
        for item in files:
            size = listing.get(item["path"])
            if size is None:
                found.append(DamagedFile(name, str(item["uri"]), "is missing", item["partition"]))
            elif size != item["size"]:
                found.append(DamagedFile(name, str(item["uri"]), f"has {size:,} bytes where the Delta log "
                                         f"recorded {item['size']:,} (truncated or replaced)", item["partition"]))
            else:
                suspects.append(item)
            if found and first_only:
                return found
        if deep:
            with ThreadPoolExecutor(4) as pool:
                for item, problem in zip(suspects, pool.map(lambda i: _unreadable(i["uri"]), suspects)):
                    if problem:
                        found.append(DamagedFile(name, str(item["uri"]), problem, item["partition"]))
                        if first_only:
                            return found
    return found


def damaged_file_error(damaged: DamagedFile) -> LakeDamagedError:
    which = ", ".join(f"{k}={v}" for k, v in sorted(damaged.partition.items()))
    part = f" ({which})" if which else ""
    return LakeDamagedError(f"lake data file of table {damaged.table!r}{part} {damaged.problem}",
                            where=damaged.uri, fix=REPAIR, table=damaged.table)
