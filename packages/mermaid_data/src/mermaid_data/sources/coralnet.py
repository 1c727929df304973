"""CoralNet adapter: per-source ``s<id>/annotations.csv`` files under one root (local or S3).

Required columns ``Image ID, Row, Column, Label ID`` (integers; any case/order, a UTF-8 BOM, CRLF and
extra columns are fine). Feature vectors: ``s<id>/features/i<image_id>.featurevector``. The CSV reader
types and range-checks every value (row/col 0..65535, ids non-negative integers); the first bad value
raises SourceFormatError naming the file, line and column. So do a line with the wrong number of
fields, a file in UTF-16 (or with NUL bytes) and a file with a header but no rows. Source folders are
``s<id>`` with the id written without leading zeros (``s0123`` is refused, not read as source 123).
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from mermaid_data import storage
from mermaid_data.errors import ConfigError, SourceFormatError
from mermaid_data.sources.columns import match_columns
from mermaid_data.sqlfiles import load_sql, sql_literal

REQUIRED = {"image_id": "Image ID", "row": "Row", "col": "Column", "label_id": "Label ID"}
#: Largest accepted value per column (values are read as text and checked strictly, see
#: sql/ingest/coralnet_macros.sql); the typed column each becomes.
LIMITS = {"image_id": (2**63 - 1, "UBIGINT"), "row": (65535, "USMALLINT"), "col": (65535, "USMALLINT"),
          "label_id": (2**63 - 1, "UBIGINT")}
EXPECTED = {
    "image_id": "a non-negative integer image id",
    "row": "an integer 0..65535",
    "col": "an integer 0..65535",
    "label_id": "a non-negative integer label id",
}
FIX = "CoralNet annotations.csv needs columns 'Image ID,Row,Column,Label ID' (integers)"
SOURCE_DIR = re.compile(r"^s(\d+)$")
MAX_SOURCE_ID = 2**63 - 1  # source ids are stored as 64-bit integers, like image and label ids
_HEADER_BYTES = 64 * 1024
_NO_NULLS = "\x01"  # nullstr that never occurs: an empty field is then a cast error, not a NULL


@dataclass(frozen=True)
class CoralNetSource:
    """One CoralNet source under the root: where its CSV and its feature objects are."""

    source_id: str  # decimal digits, e.g. "23"
    root: storage.Uri

    @property
    def prefix(self) -> str:
        return f"s{self.source_id}"

    @property
    def annotations_uri(self) -> storage.Uri:
        return self.root.join(self.prefix, "annotations.csv")

    @property
    def features_uri(self) -> storage.Uri:
        return self.root.join(self.prefix, "features")


def discover(root: storage.Uri, only: list[str] | None = None) -> list[CoralNetSource]:
    """The sources under ``root`` (every ``s<digits>/`` folder, or just ``only``).

    A folder that looks like a source but is not a valid one (``s0123``: a leading zero; an id too large
    for 64 bits) is an error when it would be read (every folder, or one ``only`` asks for).
    """
    present: dict[str, str] = {}
    misnamed: dict[str, tuple[str, str]] = {}  # source id (or the folder) -> (folder, what is wrong)
    for name in storage.list_dirs(root):
        match = SOURCE_DIR.match(name)
        if not match:
            continue
        digits = match.group(1)
        if int(digits) > MAX_SOURCE_ID:
            misnamed[name] = (name, f"source id {digits} is too large (CoralNet ids are below 2^63)")
        elif digits != str(int(digits)):
            misnamed[str(int(digits))] = (name, f"a source folder is s<id> without leading zeros (s{int(digits)})")
        else:
            present[digits] = name
    wanted = list(present) if only is None else only
    for key in (misnamed if only is None else [s for s in only if s in misnamed and s not in present]):
        folder, problem = misnamed[key]
        raise SourceFormatError(
            f"folder {folder!r} is not a CoralNet source folder: {problem}",
            where=str(root.join(folder)),
            fix="rename the folder to s<id> (the source id, no leading zeros), or move it out of --coralnet",
        )
    missing = [s for s in wanted if s not in present]
    if missing:
        raise ConfigError(
            f"CoralNet source(s) {', '.join('s' + m for m in missing)} not found under {root}",
            where=str(root),
            fix="remove them from the sources CSV or check --coralnet",
        )
    return [CoralNetSource(sid, root) for sid in sorted(wanted, key=int)]


def read_header(source: CoralNetSource) -> tuple[str, ...]:
    """The CSV header (first line), BOM stripped."""
    where = str(source.annotations_uri)
    try:
        head = storage.read_bytes(source.annotations_uri, max_bytes=_HEADER_BYTES)
    except FileNotFoundError:
        raise SourceFormatError(
            "annotations.csv is missing", where=where, fix="every s<id>/ folder needs an annotations.csv"
        ) from None
    _check_text(head, where)
    header = _parse_header(head)
    if header is None:
        raise SourceFormatError("the file is empty (no header line)", where=where, row=1, fix=FIX)
    return header


def _check_text(data: bytes, where: str) -> None:
    """Refuse UTF-16 (or any text with NUL bytes): a CSV here is UTF-8 (a BOM is fine)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data:
        raise SourceFormatError(
            "not UTF-8 text (UTF-16, or NUL bytes in the file)", where=where, row=1,
            fix="save the file as UTF-8 CSV (e.g. `iconv -f UTF-16 -t UTF-8 in.csv > annotations.csv`)",
        )


def _parse_header(head: bytes) -> tuple[str, ...] | None:
    """The names on the first line (BOM stripped), or None for an empty first line."""
    import csv

    first = io.StringIO(head.decode("utf-8-sig", errors="replace")).readline().rstrip("\r\n")
    if not first.strip():
        return None
    return tuple(next(csv.reader([first])))


def read_headers(sources: list[CoralNetSource]) -> dict[str, tuple[str, ...]]:
    """Headers of many sources, fetched in parallel (S3 range GETs)."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        headers = list(pool.map(read_header, sources))
    return {s.source_id: h for s, h in zip(sources, headers)}


def _file_uri(source: CoralNetSource) -> str:
    return str(source.annotations_uri)


def register_raw_view(
    con: duckdb.DuckDBPyConnection, sources: list[CoralNetSource], headers: dict[str, tuple[str, ...]]
) -> None:
    """Create temp view ``coralnet_raw`` (source_id, image_id, row, col, label_id) over the sources' CSVs.

    Files that share a header are read by one ``read_csv`` call; the source id comes from each row's
    file name through a small lookup table, never by parsing user text into paths.
    """
    con.execute(load_sql("ingest/coralnet_macros"))
    groups: dict[tuple[str, ...], list[CoralNetSource]] = defaultdict(list)
    for source in sources:
        groups[headers[source.source_id]].append(source)
    lookup = [(_file_uri(s), s.source_id) for s in sources]
    con.execute("CREATE OR REPLACE TEMP TABLE coralnet_files (filename VARCHAR, source_id VARCHAR)")
    if lookup:
        con.executemany("INSERT INTO coralnet_files VALUES (?, ?)", lookup)
    parts = []
    for header, members in groups.items():
        where = _file_uri(members[0])
        cols = match_columns(list(header), REQUIRED, where=where, fix=FIX)
        spec = "{" + ", ".join(f"{sql_literal(n)}: 'VARCHAR'" for n in header) + "}"
        files = "[" + ", ".join(sql_literal(_file_uri(s)) for s in members) + "]"
        selects = ", ".join(
            f'CAST(coralnet_uint("{cols[c].replace(chr(34), chr(34) * 2)}", {LIMITS[c][0]}, '
            f'{sql_literal(cols[c])}, filename) AS {LIMITS[c][1]}) AS {c}'
            for c in REQUIRED
        )
        parts.append(
            f"SELECT {selects}, filename FROM read_csv({files}, header = true, columns = {spec}, "
            f"nullstr = {sql_literal(_NO_NULLS)}, filename = true, delim = ',', quote = '\"', escape = '\"')"
        )
    union = " UNION ALL ".join(parts) if parts else (
        "SELECT NULL::UBIGINT image_id, NULL::USMALLINT \"row\", NULL::USMALLINT col, NULL::UBIGINT label_id, "
        "NULL::VARCHAR filename WHERE false"
    )
    con.execute(
        "CREATE OR REPLACE TEMP VIEW coralnet_raw AS "
        f"SELECT f.source_id, r.image_id, r.\"row\", r.col, r.label_id FROM ({union}) AS r "
        "JOIN coralnet_files AS f USING (filename)"
    )


def read_rows(con: duckdb.DuckDBPyConnection, sources: list[CoralNetSource]) -> pa.Table:
    """Every source's rows (source_key, image_id, row, col, label_id), typed and range-checked.

    Fast path: Arrow's CSV reader with typed columns, one file per task. It accepts a subset of what
    the strict reader accepts (digits with surrounding spaces; never '82.5', '1e3', '8_2' or an empty
    value) with the same values; the one thing it accepts that the strict reader does not, hex like
    '0x52', is ruled out by sending any file containing '0x' to the strict path. Every file the fast
    path rejects, for whatever reason, is read by DuckDB through ``coralnet_raw`` (strict parsing,
    sql/ingest/coralnet_strict.sql), so a bad value or line raises SourceFormatError naming the file,
    line and column. Rows come grouped by source.
    """
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="csv") as pool:
        tables = list(pool.map(_read_fast, sources))
    slow = [s for s, t in zip(sources, tables) if t is None]
    if slow:
        headers = read_headers(slow)  # an empty file or a missing column fails here, naming the file
        try:
            register_raw_view(con, slow, headers)
            strict = con.execute(load_sql("ingest/coralnet_strict")).to_arrow_table()
        except duckdb.Error as exc:
            raise explain_csv_error(exc, slow) from exc
        tables.append(strict.cast(_FAST_SCHEMA))
    rows = pa.concat_tables([t for t in tables if t is not None] or [_FAST_SCHEMA.empty_table()])
    _refuse_empty(sources, rows)
    return rows


def _refuse_empty(sources: list[CoralNetSource], rows: pa.Table) -> None:
    """A source whose annotations.csv has a header but no rows is a mistake (a cut export), not a source."""
    if not sources:
        return
    present = set(pc.unique(rows.column("source_key")).to_pylist()) if rows.num_rows else set()
    for source in sources:
        if int(source.source_id) not in present:
            raise SourceFormatError(
                "a header but no annotation rows", where=_file_uri(source), row=2,
                fix="add the rows (a complete export of the source), or remove the folder "
                    f"{source.prefix}/ (or leave it out of --coralnet-sources)",
            )


_FAST_SCHEMA = pa.schema([("source_key", pa.uint64()), ("image_id", pa.uint64()), ("row", pa.uint16()),
                          ("col", pa.uint16()), ("label_id", pa.uint64())])


def _may_hold_hex(data: bytes) -> bool:
    """Whether '0x' or '0X' occurs anywhere (a single-byte search first: ``b"0x" in data`` is slow)."""
    if b"x" not in data and b"X" not in data:
        return False
    raw = np.frombuffer(data, dtype=np.uint8)
    xs = np.flatnonzero((raw[1:] | 0x20) == ord("x"))  # 'x' or 'X' (no other byte ORs to 'x')
    return bool(np.any(raw[xs] == ord("0")))


def _read_fast(source: CoralNetSource) -> pa.Table | None:
    """The source's four columns read by Arrow, or None when the strict path must read the file."""
    try:
        data = storage.read_bytes(source.annotations_uri)
    except FileNotFoundError:
        return None  # the strict path reports it
    _check_text(data, _file_uri(source))
    header = _parse_header(data[:_HEADER_BYTES])
    if header is None or _may_hold_hex(data):
        return None
    cols = match_columns(list(header), REQUIRED, where=_file_uri(source), fix=FIX)
    names = [cols[c] for c in REQUIRED]
    if len(set(names)) != len(names) or len(set(header)) != len(header):
        return None
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20)),
            parse_options=pacsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True, escape_char=False),
            convert_options=pacsv.ConvertOptions(
                include_columns=names,
                column_types={cols[c]: _FAST_SCHEMA.field(c).type for c in REQUIRED},
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, ValueError):
        return None
    if table.column_names != names:
        return None
    for c in ("image_id", "label_id"):
        top = pc.max(table.column(cols[c])).as_py()
        if top is not None and top > LIMITS[c][0]:
            return None
    key = pa.repeat(pa.scalar(int(source.source_id), pa.uint64()), table.num_rows)
    return pa.Table.from_arrays(
        [key, *(table.column(cols[c]).combine_chunks() for c in REQUIRED)], schema=_FAST_SCHEMA
    )


_LINE = re.compile(r"CSV Error on Line: (\d+)")
_FILE = re.compile(r"^\s*file = (.+)$", re.MULTILINE)
_SNIFF_FILE = re.compile(r'Error when sniffing file "(.+?)"')
_COLUMN = re.compile(r'converting column "(.+?)"')
_VALUE = re.compile(r'Could not convert string "(.*?)"')


def explain_csv_error(exc: duckdb.Error, sources: list[CoralNetSource]) -> SourceFormatError:
    """Turn DuckDB's CSV error into one line naming the file, line, column, bad value and the fix."""
    text = str(exc)
    if "coralnet-bad-value\x1f" in text:
        return _explain_bad_value(text)
    line = _LINE.search(text)
    file = _FILE.search(text) or _SNIFF_FILE.search(text)
    column = _COLUMN.search(text)
    value = _VALUE.search(text)
    where = file.group(1).strip() if file else ", ".join(_file_uri(s) for s in sources[:3])
    if column and value:
        canonical = {v.lower(): k for k, v in REQUIRED.items()}
        key = canonical.get(column.group(1).strip().lower(), "")
        expected = EXPECTED.get(key, "a value of the column's type")
        problem = f"bad value {value.group(1)!r} (expected {expected})"
    else:
        candidates = [where] if file else [_file_uri(s) for s in sources]
        for candidate in candidates:
            ragged = _first_ragged_line(candidate)
            if ragged is not None:
                number, fields, expected = ragged
                return SourceFormatError(
                    f"line has {fields} field(s), the header has {expected}", where=candidate, row=number,
                    fix="give every line the header's columns (quote values that hold commas); " + FIX,
                )
        problem = f"cannot parse CSV ({text.splitlines()[0]})"
    return SourceFormatError(
        problem,
        where=where,
        row=int(line.group(1)) if line else None,
        column=column.group(1) if column else None,
        fix="correct that line (lines counted from 1, header included); " + FIX,
    )


def _first_ragged_line(file: str) -> tuple[int, int, int] | None:
    """(line, fields, header fields) of the first line whose field count differs from the header's.

    Error path only: scans the one file DuckDB could not read. Blank lines are skipped, as DuckDB does.
    """
    import csv

    try:
        body = storage.read_bytes(storage.Uri.parse(file)).decode("utf-8-sig", errors="replace")
        reader = csv.reader(io.StringIO(body))
        expected = len(next(reader))
        for record in reader:
            if record and len(record) != expected:
                return reader.line_num, len(record), expected
    except (OSError, ValueError, StopIteration, csv.Error):
        return None
    return None


def _explain_bad_value(text: str) -> SourceFormatError:
    """A value rejected by coralnet_uint: find its line by scanning that one file (error path only)."""
    import csv

    payload = text[text.index("coralnet-bad-value\x1f") + len("coralnet-bad-value\x1f"):]
    file, column, value = (payload.split("\x1f") + ["", "", ""])[:3]
    value = value.split("\n")[0]
    for suffix in ("'", '"'):
        value = value.removesuffix(suffix)
    line_no = None
    try:
        body = storage.read_bytes(storage.Uri.parse(file)).decode("utf-8-sig", errors="replace")
        reader = csv.reader(io.StringIO(body))
        header = next(reader)
        index = header.index(column)
        for number, record in enumerate(reader, start=2):
            if index < len(record) and record[index] == value:
                line_no = number
                break
    except (OSError, ValueError, StopIteration):
        pass
    canonical = {v.lower(): k for k, v in REQUIRED.items()}
    key = canonical.get(column.strip().lower(), "")
    return SourceFormatError(
        f"bad value {value!r} (expected {EXPECTED.get(key, 'an integer')})",
        where=file,
        row=line_no,
        column=column,
        fix="correct that line (lines counted from 1, header included); " + FIX,
    )
