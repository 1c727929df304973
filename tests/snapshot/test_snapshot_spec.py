"""Spec CSVs as people write them, and the bad ones: each ``tests/cases/bad_*`` folder holds the bad file and
the error fragments it must produce (file, line, column, fix)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mermaid_data import errors
from mermaid_data.cli import app
from mermaid_data.lake import Lake
from mermaid_data.snapshot.spec import SnapshotSpec, read_spec_csv
from typer.testing import CliRunner

from tests.snapshot.golden import B1, B2, B3, B5, B6, CASES, G1, G2, case_names, load_case
from tests.support.cli import one_line_error


@pytest.mark.parametrize("name", case_names("bad_"))
def test_bad_spec_case(golden_lake: Lake, name: str) -> None:
    case, spec = load_case(name)
    expect = case["expect"]
    before = sorted(p.name for p in (Path(golden_lake.uri.key) / "snapshots").glob("*")) if (
        Path(golden_lake.uri.key) / "snapshots").is_dir() else []
    with pytest.raises(errors.MermaidDataError) as info:
        golden_lake.create_snapshot(spec)
    assert type(info.value).__name__ == expect["error"]
    message = str(info.value)
    assert "\n" not in message
    for fragment in expect["fragments"]:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    # a failed create leaves nothing behind (no snapshot, no scratch folder)
    after = sorted(p.name for p in (Path(golden_lake.uri.key) / "snapshots").glob("*")) if (
        Path(golden_lake.uri.key) / "snapshots").is_dir() else []
    assert after == before


def test_bad_spec_on_the_command_line_is_one_line_exit_2(golden_lake: Lake) -> None:
    folder = CASES / "bad_rollup_conflict"
    result = CliRunner().invoke(app, ["snapshot", "create", "--lake", str(golden_lake.uri),
                                      "--rollups", str(folder / "rollups.csv")])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "row 4" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["snapshot", "create", "--lake", str(golden_lake.uri), "--annotation-limit", "0"])
    assert result.exit_code == 2 and "must be a positive integer" in result.output
    result = CliRunner().invoke(app, ["snapshot", "create", "--lake", str(golden_lake.uri),
                                      "--include", str(CASES / "bad_include_and_exclude" / "include.csv"),
                                      "--exclude", str(CASES / "bad_include_and_exclude" / "exclude.csv")])
    assert result.exit_code == 2 and "at most one of --include / --exclude" in result.output


@pytest.mark.parametrize(("option", "case"), [("--include", "bad_include_no_rows"),
                                              ("--exclude", "bad_exclude_no_rows")])
def test_header_only_spec_csv_is_refused_on_the_command_line(golden_lake: Lake, option: str, case: str) -> None:
    """Bug pinned: `snapshot create --include header-only.csv` published a 0-row snapshot (exit 0)."""
    path = next((CASES / case).glob("*.csv"))
    before = golden_lake.sql("SELECT count(*) FROM snapshots").item()
    result = CliRunner().invoke(app, ["snapshot", "create", "--lake", str(golden_lake.uri), option, str(path)],
                                env={"COLUMNS": "250"})
    line = one_line_error(result)
    assert str(path) in line and "no rows" in line and option in line
    assert golden_lake.sql("SELECT count(*) FROM snapshots").item() == before


# ------------------------------------------------------------------------------------------------
# parsing as people write them
# ------------------------------------------------------------------------------------------------


def write(path: Path, text: str, *, bom: bool = False, crlf: bool = False) -> Path:
    data = (text.replace("\n", "\r\n") if crlf else text).encode()
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def test_formatting_does_not_change_the_parsed_rows(tmp_path: Path) -> None:
    plain = write(tmp_path / "plain.csv", f"from_ba_id,from_gf_id,to_ba_id,to_gf_id\n{B2},{G1},{B1},\n{B6},,{B5},\n")
    messy = write(
        tmp_path / "messy.csv",
        "to_gf_name,to_gf_id, TO_BA_ID ,from_ba_name,from_gf_id,from_ba_id,note\n\n"
        f",,{B5},Sand,None,  {B6.upper()}  ,\"a, quoted note\"\n"
        "\n"
        f",null,{B1},Acropora,{G1.upper()},{B2},\n"
        f",,{B1},Acropora,{G1},{B2},the same rule twice\n\n\n",
        bom=True, crlf=True,
    )
    a, b = read_spec_csv(plain, "rollups"), read_spec_csv(messy, "rollups")
    assert a.rows == b.rows == ((B2, G1, B1, ""), (B6, "", B5, ""))
    assert a.sha256 == b.sha256
    assert a.columns == ("from_ba_id", "from_gf_id", "to_ba_id", "to_gf_id")


def test_gf_columns_are_optional_and_blank_means_no_growth_form(tmp_path: Path) -> None:
    table = read_spec_csv(write(tmp_path / "inc.csv", f"ba_id\n{B3}\n"), "include")
    assert table.rows == ((B3, ""),)
    table = read_spec_csv(write(tmp_path / "inc2.csv", f"ba_id,gf_id\n{B3},{G2}\n{B3},\n"), "include")
    assert table.rows == ((B3, ""), (B3, G2))  # two distinct pairs: blank is not "any"


def test_sources_csv_accepts_s_prefix_and_sorts_numerically(tmp_path: Path) -> None:
    table = read_spec_csv(write(tmp_path / "s.csv", "name,ID\nx,s101\ny, 9 \nz,S020\n\n"), "sources")
    assert table.rows == (("9",), ("20",), ("101",))


@pytest.mark.parametrize(
    ("kind", "text", "fragments"),
    [
        ("include", "", ["empty file"]),
        ("include", "gf_id\n\n", ["missing column 'ba_id'", "row 1"]),
        ("include", f"ba_id,gf_id\n{B1},not-a-gf\n", ["row 2", "column 'gf_id'", "'not-a-gf' is not a UUID"]),
        ("include", "ba_id,gf_id,ba_name\n,,Hard coral\n", ["row 2", "column 'ba_id'", "ba_id empty"]),
        ("sources", "id\n11\n-3\n", ["row 3", "source id '-3' is not an integer"]),
        ("sources", "source\n11\n", ["missing column 'id'"]),
    ],
)
def test_more_bad_files(tmp_path: Path, kind: str, text: str, fragments: list[str]) -> None:
    path = write(tmp_path / "spec.csv", text)
    with pytest.raises(errors.SourceFormatError) as info:
        read_spec_csv(path, kind)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_unreadable_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(errors.SourceFormatError, match="cannot read"):
        read_spec_csv(tmp_path / "nope.csv", "include")
    with pytest.raises(errors.SourceFormatError, match="not UTF-8"):
        read_spec_csv(write_bytes(tmp_path / "latin1.csv", b"ba_id\n\xe9\n"), "include")


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_options_are_validated_before_anything_is_read() -> None:
    with pytest.raises(errors.ConfigError, match="not a percentage"):
        SnapshotSpec(missing_features_allowed=101).validate()
    with pytest.raises(errors.ConfigError, match="positive integer"):
        SnapshotSpec(annotation_limit=-1).validate()
    SnapshotSpec(annotation_limit=1, missing_features_allowed=0).validate()
