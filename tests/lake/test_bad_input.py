"""Bad input: one clear error naming file, row/column and the fix, and the lake left exactly as it was.

Each case ingests a good baseline first (so "unchanged" means "same Delta versions", not just "no lake"),
then the bad input, through the Python API (exception type and fields) and the CLI (exit code 2, one
line, no traceback).
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mermaid_data.cli import app
from mermaid_data.demo import DemoSummary
from mermaid_data.errors import ConfigError, MermaidDataError, SourceFormatError, SourceUnreachableError
from mermaid_data.ingest import ingest
from mermaid_data.lake import Lake
from typer.testing import CliRunner

from tests.support.api_server import ApiServer
from tests.support.cli import one_line_error

GOOD_CSV = "Image ID,Row,Column,Label ID\n1,10,20,82\n1,11,21,82\n2,12,22,83\n"
MERMAID_PARQUET = "mermaid/mermaid_confirmed_annotations.parquet"


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


class Case:
    """A CoralNet root with a good baseline source s1 already ingested into ``lake``."""

    def __init__(self, root: Path, *, fresh: bool = True) -> None:
        self.root = root
        self.coralnet = root / "coralnet"
        self.lake_dir = root / "lake"
        if fresh:
            self.write("1", GOOD_CSV)
            ingest(self.lake, mermaid_uri=None, coralnet_uri=str(self.coralnet), api=None)
        self.versions = self.lake.versions()
        assert self.versions["annotations"] >= 0

    @property
    def lake(self) -> Lake:
        return Lake.open(str(self.lake_dir))

    def write(self, source_id: str, text: str | bytes) -> Path:
        path = self.coralnet / f"s{source_id}" / "annotations.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, str):
            text = text.encode("utf-8")
        path.write_bytes(text)
        return path

    def ingest(self, **kw) -> None:
        ingest(
            self.lake,
            mermaid_uri=kw.pop("mermaid_uri", None),
            coralnet_uri=kw.pop("coralnet_uri", str(self.coralnet)),
            api=kw.pop("api", None),
            **kw,
        )

    def cli(self, *extra: str):
        args = ["ingest", "--lake", str(self.lake_dir), "--mermaid", "none", "--api", "none", *extra]
        if not any(a == "--coralnet" for a in extra):
            args += ["--coralnet", str(self.coralnet)]
        return CliRunner().invoke(app, args, env={"COLUMNS": "250"})

    def assert_unchanged(self) -> None:
        assert self.lake.versions() == self.versions
        assert self.lake.sql("SELECT count(*) FROM annotations").item() == 3


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once: copying a small local lake (Delta logs hold relative paths) is faster than ingesting."""
    return Case(tmp_path_factory.mktemp("baseline")).root


@pytest.fixture
def case(baseline: Path, tmp_path: Path) -> Case:
    root = tmp_path / "case"
    shutil.copytree(baseline, root)
    return Case(root, fresh=False)


def assert_names_fix(message: str) -> None:
    assert "Fix:" in message, message
    assert len(message.split("Fix:", 1)[1].strip()) > 10, message


def check_csv_error(
    case: Case, path: Path, *, line: int | None, column: str | None, words: tuple[str, ...] = ()
):
    """Python: SourceFormatError with file/row/column; CLI: the same as one line; lake unchanged."""
    with pytest.raises(SourceFormatError) as info:
        case.ingest()
    err = info.value
    message = str(err)
    assert str(path) in message, message
    assert "s1/annotations.csv" not in message, message  # the good file is not blamed
    if line is not None:
        assert err.row == line, message
        assert f"row {line}" in message
    if column is not None:
        assert err.column is not None and err.column.lower() == column.lower(), message
        assert column.lower() in message.lower()
    for word in words:
        assert word in message, (word, message)
    assert_names_fix(message)
    case.assert_unchanged()
    cli_line = one_line_error(case.cli())
    assert str(path) in cli_line
    assert_names_fix(cli_line)
    case.assert_unchanged()
    return err


# --------------------------------------------------------------------------------------------------
# CoralNet CSV
# --------------------------------------------------------------------------------------------------


def test_csv_missing_column(case: Case) -> None:
    """Bug pinned: a CSV without 'Column' ingested with NULLs or failing with a raw DuckDB error."""
    path = case.write("2", "Image ID,Row,Label ID\n1,10,82\n")
    check_csv_error(case, path, line=None, column="Column", words=("missing column",))


def test_csv_misspelled_column_suggests_the_header(case: Case) -> None:
    """Bug pinned: 'Lable ID' reported as just missing, without pointing at the misspelling."""
    path = case.write("2", "Image ID,Row,Column,Lable ID\n1,10,20,82\n")
    err = check_csv_error(case, path, line=None, column="Label ID")
    assert "'Lable ID'" in str(err) and "misspelled" in str(err)


@pytest.mark.parametrize(
    ("name", "body", "line", "column", "value"),
    [
        ("non-integer image id", "1,10,20,82\n2,11,21,82\nabc,12,22,82\n", 4, "Image ID", "abc"),
        ("non-integer label id", "1,10,20,82\n2,11,21,82\n3,12,22,8x2\n", 4, "Label ID", "8x2"),
        ("decimal label id", "1,10,20,82\n2,11,21,82.5\n", 3, "Label ID", "82.5"),
        ("decimal row", "1,10,20,82\n2,11.7,21,82\n", 3, "Row", "11.7"),
        ("empty label id", "1,10,20,82\n2,11,21,\n", 3, "Label ID", ""),
        ("negative row", "1,10,20,82\n2,-11,21,82\n3,12,22,1\n", 3, "Row", "-11"),
        ("row 70000", "1,10,20,82\n2,11,21,82\n3,70000,22,1\n", 4, "Row", "70000"),
        ("column above 65535", "1,10,65536,82\n", 2, "Column", "65536"),
        # values Arrow's or DuckDB's own integer parsers accept but a person did not mean as integers
        ("hex label id", "1,10,20,82\n2,11,21,0x52\n", 3, "Label ID", "0x52"),
        ("hex row among names with x", "Alex,1,10,20,82\nMax,2,0X1,21,82\n", 3, "Row", "0X1"),
        ("exponent image id", "1,10,20,82\n1e3,11,21,82\n", 3, "Image ID", "1e3"),
        ("digit separator", "1,10,20,82\n2,11,21,8_2\n", 3, "Label ID", "8_2"),
        ("plus sign", "1,10,20,82\n2,+11,21,82\n", 3, "Row", "+11"),
        ("label id above 2^63-1", "1,10,20,9223372036854775808\n", 2, "Label ID", "9223372036854775808"),
    ],
)
def test_csv_bad_value_names_file_line_column(
    case: Case, name: str, body: str, line: int, column: str, value: str
) -> None:
    """Bug pinned: bad CoralNet values silently cast (rounded, wrapped, NULLed) or reported without a place."""
    case.write("2", GOOD_CSV)  # a good new source sharing the header: the bad one must still be named
    header = "Annotator,Image ID,Row,Column,Label ID\n" if name.endswith("names with x") else "Image ID,Row,Column,Label ID\n"
    path = case.write("3", header + body)
    check_csv_error(case, path, line=line, column=column, words=(repr(value),))


def test_csv_bad_value_deep_in_a_big_file(case: Case) -> None:
    """Bug pinned: line numbers off once DuckDB reads a file in several chunks."""
    rows = "".join(f"{i},{i % 500},{i % 700},82\n" for i in range(60_000))
    tail = "".join(rows.splitlines(keepends=True)[:100])  # whole lines: a cut line would be a second error
    path = case.write("2", "Image ID,Row,Column,Label ID\n" + rows + "7,8,-9,82\n" + tail)
    check_csv_error(case, path, line=60_002, column="Column", words=("'-9'",))


def test_csv_ragged_line_is_a_clear_error(case: Case) -> None:
    """Bug pinned: a line with too few fields escaping as a raw DuckDB error (stack trace in the CLI)."""
    path = case.write("2", "Image ID,Row,Column,Label ID\n1,10,20,82\n2,11\n")
    with pytest.raises(SourceFormatError) as info:
        case.ingest()
    assert str(path) in str(info.value)
    assert_names_fix(str(info.value))
    case.assert_unchanged()
    assert str(path) in one_line_error(case.cli())
    case.assert_unchanged()


def test_csv_empty_file_is_a_clear_error(case: Case) -> None:
    """Bug pinned: an empty annotations.csv crashing the reader or ingesting as an empty source."""
    path = case.write("2", "")
    with pytest.raises(SourceFormatError) as info:
        case.ingest()
    assert str(path) in str(info.value)
    case.assert_unchanged()


@pytest.mark.parametrize("body", ["Image ID,Row,Column,Label ID\n", "Image ID,Row,Column,Label ID\r\n\r\n",
                                  "\ufeffImage ID,Row,Column,Label ID"])
def test_csv_header_only_is_refused(case: Case, body: str) -> None:
    """Bug pinned: a header-only annotations.csv ended in `IndexError: index 0 is out of bounds` (a traceback)."""
    path = case.write("2", body)
    err = check_csv_error(case, path, line=2, column=None, words=("a header but no annotation rows",))
    assert "s2/" in str(err)


def test_csv_header_only_among_good_sources_is_named(case: Case) -> None:
    """Bug pinned: the empty source hidden among good ones (only the whole ingest failing)."""
    case.write("2", GOOD_CSV)
    path = case.write("3", "Image ID,Row,Column,Label ID\n")
    case.write("4", "Image ID,Row,Column,Label ID\n5,1,1,0x52\n")  # a strict-path file too: still named right
    with pytest.raises(SourceFormatError):
        case.ingest()
    line = one_line_error(case.cli("--coralnet-sources", str(write_ids(case.root, ["2", "3"]))))
    assert str(path) in line
    case.assert_unchanged()


def write_ids(root: Path, ids: list[str]) -> Path:
    listing = root / "sources.csv"
    listing.write_text("id\n" + "".join(f"{i}\n" for i in ids))
    return listing


def test_source_folder_with_a_leading_zero(case: Case) -> None:
    """Bug pinned: `s0123/` read as source 123, then reported as "s123/annotations.csv is missing"."""
    folder = case.write("0123", GOOD_CSV).parent
    err = check_csv_error(case, folder, line=None, column=None, words=("'s0123'", "leading zeros", "(s123)"))
    assert "s123/annotations.csv" not in str(err) and "missing" not in str(err)
    line = one_line_error(case.cli("--coralnet-sources", str(write_ids(case.root, ["123"]))))
    assert "'s0123'" in line and "leading zeros" in line
    case.assert_unchanged()


def test_source_folder_id_too_large(case: Case) -> None:
    """Bug pinned: a folder `s99999999999999999999999` ended in `OverflowError: Python int too large` (a traceback)."""
    folder = case.write("99999999999999999999999", GOOD_CSV).parent
    check_csv_error(case, folder, line=None, column=None, words=("too large", "s99999999999999999999999"))


def test_sources_csv_id_too_large_or_not_ascii(case: Case) -> None:
    """Bug pinned: a listed id beyond 64 bits (or '²', which str.isdigit accepts) crashing int()/Arrow."""
    for bad in ("99999999999999999999999", "\u00b2"):
        listing = case.root / "sources.csv"
        listing.write_text(f"id\n1\n{bad}\n", encoding="utf-8")
        line = one_line_error(case.cli("--coralnet-sources", str(listing)))
        assert str(listing) in line and "row 3" in line
        assert_names_fix(line)
    case.assert_unchanged()


def test_sources_csv_header_only_is_refused(case: Case) -> None:
    """Bug pinned: an empty --coralnet-sources list accepted (an include list with no rows is a mistake)."""
    listing = write_ids(case.root, [])
    line = one_line_error(case.cli("--coralnet-sources", str(listing)))
    assert str(listing) in line and "no rows" in line and "--coralnet-sources" in line
    case.assert_unchanged()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_csv_utf16_names_the_file(case: Case, encoding: str) -> None:
    """Bug pinned: a UTF-16 annotations.csv reported as `Parser Error: unterminated quoted identifier`."""
    path = case.write("2", GOOD_CSV.encode(encoding))
    check_csv_error(case, path, line=1, column=None, words=("not UTF-8", "UTF-16"))


@pytest.mark.parametrize(
    ("body", "line", "fields"),
    [
        ("1,10,20,82\n2,11\n3,12,22,1\n", 3, 2),
        ("1,10,20,82\n2,11,21,82,99\n", 3, 5),
        ("1,10,20,82\n\n2,11,21,82\n4,5\n", 5, 2),  # blank lines count, as in any editor
        ('1,10,20,82\n"a\nb",11,21,82\n3,12\n', 5, 2),  # a quoted line break: lines are physical lines
    ],
)
def test_csv_ragged_line_names_the_line(case: Case, body: str, line: int, fields: int) -> None:
    """Bug pinned: a line with too few or too many fields reported as DuckDB's "Error when sniffing file"."""
    path = case.write("2", "Image ID,Row,Column,Label ID\n" + body)
    err = check_csv_error(case, path, line=line, column=None, words=(f"line has {fields} field(s), the header has 4",))
    assert "sniffing" not in str(err)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("bom", b"\xef\xbb\xbfImage ID,Row,Column,Label ID\n5,10,20,82\n5,11,21,83\n6,12,22,84\n"),
        ("crlf", b"Image ID,Row,Column,Label ID\r\n5,10,20,82\r\n5,11,21,83\r\n6,12,22,84\r\n"),
        ("header case", b"image id,ROW,column,label id\n5,10,20,82\n5,11,21,83\n6,12,22,84\n"),
        ("column order", b"Label ID,Column,Image ID,Row\n82,20,5,10\n83,21,5,11\n84,22,6,12\n"),
        (
            "all at once, extra columns",
            (
                b"\xef\xbb\xbfLabel,label id,COLUMN,Annotator,row,IMAGE ID\r\n"
                b'Turf,82,20,kim,10,5\r\nSand,83,21,kim,11,5\r\nRubble,84,22,"a, b",12,6\r\n'
            ),
        ),
    ],
)
def test_csv_variants_are_accepted(case: Case, name: str, raw: bytes) -> None:
    """Bug pinned: BOM/CRLF/header case/column order/extra columns rejected, or values read into the wrong column."""
    case.write("2", raw)
    case.ingest()
    rows = case.lake.sql(
        "SELECT image_id, \"row\", col, label_id FROM annotations WHERE source_id = '2' ORDER BY ALL"
    ).rows()
    assert rows == [("5", 10, 20, "82"), ("5", 11, 21, "83"), ("6", 12, 22, "84")]
    result = case.cli()
    assert result.exit_code == 0, result.output


def test_duplicate_points_kept_and_counted(case: Case) -> None:
    """Bug pinned: duplicate points (same image, row, col) deduplicated away or given the same id."""
    case.write("2", "Image ID,Row,Column,Label ID\n7,10,20,82\n7,10,20,82\n7,10,20,83\n7,11,20,82\n")
    case.ingest()
    lake = case.lake
    frame = lake.sql("SELECT annotation_id, label_id FROM annotations WHERE source_id = '2'")
    assert frame.height == 4
    assert frame["annotation_id"].n_unique() == 4
    assert lake.sql("SELECT duplicate_points FROM sources WHERE source_id = '2'").item() == 2
    result = case.cli()  # unchanged now: the summary still counts them
    assert result.exit_code == 0, result.output
    assert "duplicate points" in result.stdout
    from mermaid_data.ingest import summarize

    assert summarize(lake)["duplicate_points"] == 2


# --------------------------------------------------------------------------------------------------
# sources CSV (--coralnet-sources)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["12; rm -rf /", "../s3", "s1/../../etc", "1.5", "-4"])
def test_sources_csv_with_non_integer_id(case: Case, bad_id: str) -> None:
    """Bug pinned: a source id from the sources CSV used to build a path (path traversal, shell text)."""
    case.write("3", GOOD_CSV)
    listing = case.root / "sources.csv"
    listing.write_text(f'id,name\n1,good\n"{bad_id}",bad\n', encoding="utf-8")
    line = one_line_error(case.cli("--coralnet-sources", str(listing)))
    assert str(listing) in line
    assert "row 3" in line
    assert repr(bad_id) in line or bad_id in line
    assert_names_fix(line)
    case.assert_unchanged()


def test_sources_csv_lists_a_missing_source(case: Case) -> None:
    """Bug pinned: a listed source that does not exist silently skipped (or ingested as empty)."""
    listing = case.root / "sources.csv"
    listing.write_text("id\n1\n999\n", encoding="utf-8")
    line = one_line_error(case.cli("--coralnet-sources", str(listing)))
    assert "s999" in line
    assert_names_fix(line)
    with pytest.raises(ConfigError, match="s999"):
        case.ingest(coralnet_sources=["1", "999"])
    case.assert_unchanged()


def test_sources_csv_selects_sources(case: Case) -> None:
    """Bug pinned: --coralnet-sources ignored (every source under the root ingested)."""
    case.write("2", GOOD_CSV)
    case.write("3", GOOD_CSV)
    listing = case.root / "sources.csv"
    listing.write_bytes(b"\xef\xbb\xbfID,name\r\ns3,three\r\n")
    result = case.cli("--coralnet-sources", str(listing))
    assert result.exit_code == 0, result.output
    assert set(case.lake.sql("SELECT DISTINCT source_id FROM annotations")["source_id"]) == {"1", "3"}


# --------------------------------------------------------------------------------------------------
# MERMAID parquet
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mermaid_table(demo_sources: DemoSummary) -> pa.Table:
    return pq.read_table(demo_sources.dest / MERMAID_PARQUET)


def _replace(table: pa.Table, name: str, array: pa.Array) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, pa.field(name, array.type), array)


def _mermaid_error(case: Case, path: Path | str, *, column: str | None, row: int | None = None) -> str:
    with pytest.raises(SourceFormatError) as info:
        case.ingest(mermaid_uri=str(path), coralnet_uri=None)
    message = str(info.value)
    assert str(path).split("*")[0] in message, message
    if column is not None:
        assert info.value.column == column, message
    if row is not None:
        assert info.value.row == row, message
    assert_names_fix(message)
    case.assert_unchanged()
    result = CliRunner().invoke(
        app,
        ["ingest", "--lake", str(case.lake_dir), "--mermaid", str(path), "--api", "none"],
        env={"COLUMNS": "250"},
    )
    one_line_error(result)
    case.assert_unchanged()
    return message


def test_mermaid_missing_column(case: Case, mermaid_table: pa.Table) -> None:
    """Bug pinned: a MERMAID export without benthic_attribute_id ingested with NULL BAs."""
    path = case.root / "m.parquet"
    pq.write_table(mermaid_table.drop_columns(["benthic_attribute_id"]), path)
    message = _mermaid_error(case, path, column="benthic_attribute_id")
    assert "missing column" in message


def test_mermaid_row_out_of_range(case: Case, mermaid_table: pa.Table) -> None:
    """Bug pinned: a MERMAID row of 70000 wrapped or truncated into the int range."""
    rows = mermaid_table.column("row").to_pylist()
    rows[42] = 70_000
    path = case.root / "m.parquet"
    pq.write_table(_replace(mermaid_table, "row", pa.array(rows, pa.int64())), path)
    message = _mermaid_error(case, path, column="row", row=43)
    assert "70000" in message


def test_mermaid_negative_col(case: Case, mermaid_table: pa.Table) -> None:
    """Bug pinned: a negative MERMAID col accepted."""
    cols = mermaid_table.column("col").to_pylist()
    cols[7] = -1
    path = case.root / "m.parquet"
    pq.write_table(_replace(mermaid_table, "col", pa.array(cols, pa.int64())), path)
    _mermaid_error(case, path, column="col", row=8)


def test_mermaid_non_uuid_benthic_attribute(case: Case, mermaid_table: pa.Table) -> None:
    """Bug pinned: a benthic attribute id that is not a UUID (e.g. a name) stored as an id."""
    values = mermaid_table.column("benthic_attribute_id").to_pylist()
    values[100] = "Hard coral"
    path = case.root / "m.parquet"
    pq.write_table(_replace(mermaid_table, "benthic_attribute_id", pa.array(values, pa.string())), path)
    message = _mermaid_error(case, path, column="benthic_attribute_id", row=101)
    assert "'Hard coral'" in message


def test_mermaid_growth_form_none_empty_null_become_empty(case: Case, mermaid_table: pa.Table) -> None:
    """Bug pinned: 'None', '' or NULL growth forms stored as such instead of ''."""
    values = mermaid_table.column("growth_form_id").to_pylist()
    real = next(v for v in values if v != "None")
    values[:6] = ["None", "", None, "  ", "none", real.upper()]
    table = _replace(mermaid_table, "growth_form_id", pa.array(values, pa.string()))
    path = case.root / "m.parquet"
    pq.write_table(table, path)
    case.ingest(mermaid_uri=str(path), coralnet_uri=None)
    lake = case.lake
    got = lake.sql("SELECT annotation_id, growth_form_id FROM annotations WHERE site = 'mermaid'")
    by_id = dict(got.rows())
    ids = [v.lower() for v in table.column("id").to_pylist()]
    assert [by_id[i] for i in ids[:6]] == ["", "", "", "", "", real.lower()]
    assert (
        lake.sql(
            "SELECT count(*) FROM annotations WHERE site = 'mermaid' AND (growth_form_id IS NULL OR growth_form_id = 'None')"
        ).item()
        == 0
    )
    assert lake.sql("SELECT count(*) FROM annotations_mapped WHERE site = 'mermaid'").item() == table.num_rows


def test_mermaid_file_with_null_typed_column(case: Case, mermaid_table: pa.Table) -> None:
    """Bug pinned: a MERMAID file whose all-NULL growth form columns were written with Arrow type null."""
    n = mermaid_table.num_rows
    table = _replace(mermaid_table, "growth_form_id", pa.nulls(n, pa.null()))
    table = _replace(table, "growth_form_name", pa.nulls(n, pa.null()))
    assert table.schema.field("growth_form_id").type == pa.null()
    path = case.root / "m.parquet"
    pq.write_table(table, path)
    case.ingest(mermaid_uri=str(path), coralnet_uri=None)
    assert case.lake.sql(
        "SELECT count(*), count(*) FILTER (WHERE growth_form_id = '') FROM annotations WHERE site = 'mermaid'"
    ).row(0) == (n, n)


def test_mermaid_parts_with_null_typed_column(case: Case, mermaid_table: pa.Table) -> None:
    """Bug pinned: an export written in parts where one part's nullable column came out as type null.

    The adapter's docstring promises "one file, or a folder/glob of parts"; a glob of the parts is given.
    """
    parts = case.root / "mermaid"
    parts.mkdir()
    first = mermaid_table.slice(0, 300)
    second = mermaid_table.slice(300)
    second = _replace(second, "growth_form_id", pa.nulls(second.num_rows, pa.null()))
    pq.write_table(first, parts / "part-0.parquet")
    pq.write_table(second, parts / "part-1.parquet")
    assert pq.read_schema(parts / "part-1.parquet").field("growth_form_id").type == pa.null()
    case.ingest(mermaid_uri=str(parts / "*.parquet"), coralnet_uri=None)
    lake = case.lake
    versions = lake.versions()
    case.ingest(mermaid_uri=str(parts / "*.parquet"), coralnet_uri=None)
    assert lake.versions() == versions, "an unchanged set of parts must not write a new version"
    assert (
        lake.sql("SELECT count(*) FROM annotations WHERE site = 'mermaid'").item() == mermaid_table.num_rows
    )
    first_gf = pl.from_arrow(first.select(["id", "growth_form_id"]))
    expected_empty = int((first_gf["growth_form_id"] == "None").sum()) + second.num_rows
    assert (
        lake.sql("SELECT count(*) FROM annotations WHERE site = 'mermaid' AND growth_form_id = ''").item()
        == expected_empty
    )


def test_mermaid_file_not_found(case: Case) -> None:
    """Bug pinned: a wrong --mermaid path failing with a raw OS error (or silently ingesting nothing)."""
    path = case.root / "nope.parquet"
    with pytest.raises(SourceUnreachableError) as info:
        case.ingest(mermaid_uri=str(path), coralnet_uri=None)
    assert str(path) in str(info.value)
    assert_names_fix(str(info.value))
    case.assert_unchanged()


def test_mermaid_not_parquet(case: Case) -> None:
    """Bug pinned: a CSV passed as --mermaid crashing with a raw DuckDB error."""
    path = case.root / "m.parquet"
    path.write_text("id,image_id\n1,2\n")
    _mermaid_error(case, path, column=None)


# --------------------------------------------------------------------------------------------------
# unreachable S3 / API: an error within seconds, not a hang
# --------------------------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def impatient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERMAID_NETWORK_TIMEOUT_S", "1")
    monkeypatch.setenv("MERMAID_NETWORK_RETRIES", "1")


@pytest.mark.parametrize("which", ["mermaid", "coralnet"])
def test_unreachable_s3_endpoint_fails_fast(
    case: Case, impatient: None, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    """Bug pinned: an unreachable S3 endpoint hanging ingest (no timeout / unbounded retries)."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    kw = (
        {"mermaid_uri": "s3://bucket/mermaid/mermaid_confirmed_annotations.parquet", "coralnet_uri": None}
        if which == "mermaid"
        else {"coralnet_uri": "s3://bucket/coralnet"}
    )
    started = time.monotonic()
    with pytest.raises(SourceUnreachableError) as info:
        case.ingest(**kw)
    assert time.monotonic() - started < 10
    assert "s3://bucket/" in str(info.value)
    assert_names_fix(str(info.value))
    case.assert_unchanged()


def test_unreachable_api_fails_fast(case: Case, impatient: None) -> None:
    """Bug pinned: an unreachable MERMAID API hanging ingest."""
    url = f"http://127.0.0.1:{closed_port()}/v1/"
    started = time.monotonic()
    with pytest.raises(SourceUnreachableError) as info:
        case.ingest(api=url)
    assert time.monotonic() - started < 10
    assert url in str(info.value)
    assert_names_fix(str(info.value))
    case.assert_unchanged()
    result = CliRunner().invoke(
        app,
        ["ingest", "--lake", str(case.lake_dir), "--mermaid", "none", "--api", url],
        env={"COLUMNS": "250"},
    )
    assert url in one_line_error(result)
    case.assert_unchanged()


def test_api_that_never_answers_times_out(case: Case, impatient: None, demo_api_payloads) -> None:
    """Bug pinned: an API that accepts the connection but never answers blocking ingest forever."""
    with ApiServer(*demo_api_payloads, delay_s=30) as server:
        started = time.monotonic()
        with pytest.raises(SourceUnreachableError) as info:
            case.ingest(api=server.base_url)
        elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    assert "timed out" in str(info.value)
    case.assert_unchanged()


def test_a_bad_source_leaves_other_good_sources_unwritten(case: Case) -> None:
    """Bug pinned: good sources committed before a bad one fails (a half-applied ingest)."""
    case.write("2", GOOD_CSV)
    case.write("1", GOOD_CSV + "3,1,1,82\n")  # a change to the baseline source too
    case.write("9", "Image ID,Row,Column,Label ID\n1,1,1,x\n")
    with pytest.raises(MermaidDataError):
        case.ingest()
    case.assert_unchanged()


def test_no_lake_written_when_the_first_ingest_fails(tmp_path: Path) -> None:
    """Bug pinned: a failed first ingest leaving half-made tables behind."""
    path = tmp_path / "coralnet" / "s4" / "annotations.csv"
    path.parent.mkdir(parents=True)
    path.write_text("Image ID,Row,Column,Label ID\n1,1,1,82\n1,2,2,-82\n")
    lake_dir = tmp_path / "lake"
    result = CliRunner().invoke(
        app,
        [
            "ingest",
            "--lake",
            str(lake_dir),
            "--mermaid",
            "none",
            "--api",
            "none",
            "--coralnet",
            str(tmp_path / "coralnet"),
        ],
    )
    line = one_line_error(result)
    assert str(path) in line and "row 3" in line
    assert not Lake.open(str(lake_dir)).exists()
    assert not (lake_dir / "tables").exists() or not any((lake_dir / "tables").iterdir())
    shutil.rmtree(tmp_path / "coralnet")
