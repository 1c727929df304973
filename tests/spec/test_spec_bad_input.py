"""Bad inputs of ``mermaid-data spec``: each is one line on stderr (file, row, fix), exit 2, nothing written."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from mermaid_data import errors
from mermaid_data.cli import app
from mermaid_data.lake import Lake
from mermaid_data.specs import RollupLevel, label_spec, rollup_spec, source_spec
from mermaid_data.tables import BENTHIC_ATTRIBUTES
from typer.testing import CliRunner

from tests.spec.tree import BA_NAMES, BA_PARENTS, T


@dataclass(frozen=True)
class File:
    """A spec CSV the case writes into its tmp folder before running; its path replaces it in the args."""

    name: str
    text: str


UNKNOWN = "b7000000-0000-4000-8000-000000000099"
#: name -> (spec args, fragments the one-line error must hold; "{tmp}" is the case's tmp folder)
BAD_INPUTS: dict[str, tuple[list, list[str]]] = {
    "depth_zero": (["rollups", "--to", "depth 0"], ["--to 'depth 0': depth needs a positive integer", "Fix: pass --to root"]),
    "depth_without_level": (["rollups", "--to", "depth"], ["depth needs a positive integer"]),
    "depth_not_a_number": (["rollups", "--to", "depth two"], ["--to 'depth two'", "positive integer"]),
    "to_missing_file": (["rollups", "--to", "nope.csv"], ["--to 'nope.csv' is neither root, 'depth N' nor an existing CSV file"]),
    "target_unknown": (
        ["rollups", "--to", File("t.csv", f"ba_id,name\n{T[2]},Acroporidae\n{UNKNOWN},Typo\n")],
        ["{tmp}/t.csv, row 3, column 'ba_id'", f"target {UNKNOWN} is not a benthic attribute of the lake",
         "Fix: use ids of the lake's taxonomy"],
    ),
    "target_not_uuid": (
        ["rollups", "--to", File("t.csv", f"ba_id\n{T[2]}\nAcropora\n")],
        ["{tmp}/t.csv, row 3, column 'ba_id'", "'Acropora' is not a UUID", "a targets CSV has a column ba_id"],
    ),
    "target_header_only": (["rollups", "--to", File("t.csv", "ba_id,name\n")], ["has a header but no benthic attribute ids"]),
    "target_no_ba_id_column": (["rollups", "--to", File("t.csv", f"id\n{T[2]}\n")], ["row 1", "missing column 'ba_id'"]),
    "min_annotations_zero": (["labels", "--min-annotations", "0"], ["--min-annotations 0 is not a positive integer", "Fix:"]),
    "top_zero": (["labels", "--min-annotations", "1", "--top", "0"], ["--top 0 is not a positive integer"]),
    "rollups_conflict": (
        ["labels", "--min-annotations", "1", "--rollups",
         File("r.csv", f"from_ba_id,from_gf_id,to_ba_id,to_gf_id\n{T[3]},,{T[2]},\n{T[3]},,{T[1]},\n")],
        ["{tmp}/r.csv, row 3", "two rollup rows", "disagree", "keep one rule per from_ba_id/from_gf_id pair"],
    ),
    "source_not_in_lake": (
        ["labels", "--min-annotations", "1", "--coralnet-sources", File("s.csv", "id\n21\n99\n")],
        ["CoralNet source(s) s99 listed but not in the lake"],
    ),
    "min_images_zero": (["sources", "--min-images", "0"], ["--min-images 0 is not a positive integer"]),
}


def assert_one_line_error(result, fragments: list[str]) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in {result.stderr!r}"


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(tree_lake: Lake, tmp_path: Path, name: str) -> None:
    raw_args, raw_fragments = BAD_INPUTS[name]
    args = []
    for arg in raw_args:
        if isinstance(arg, File):
            (tmp_path / arg.name).write_text(arg.text, encoding="utf-8")
            arg = str(tmp_path / arg.name)
        args.append(arg)
    fragments = [f.replace("{tmp}", str(tmp_path)) for f in raw_fragments]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = CliRunner().invoke(app, ["spec", *args, "--lake", str(tree_lake.uri), "--output", str(out_dir / "x.csv")])
    assert_one_line_error(result, fragments)
    assert list(out_dir.iterdir()) == []  # no output, no half-written scratch file


def test_no_lake_and_missing_output_folder(tree_lake: Lake, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["spec", "sources", "--min-images", "1", "--lake", str(tmp_path / "nolake")])
    assert_one_line_error(result, ["no lake here", "Fix:"])
    result = CliRunner().invoke(app, ["spec", "rollups", "--to", "root", "--lake", str(tree_lake.uri),
                                      "--output", str(tmp_path / "missing" / "r.csv")])
    assert_one_line_error(result, [f"folder {tmp_path / 'missing'} does not exist"])
    assert not (tmp_path / "missing").exists()


def test_python_api_raises_the_same_errors(tree_lake: Lake) -> None:
    with pytest.raises(errors.ConfigError, match="not a positive integer"):
        RollupLevel.at_depth(0)
    with pytest.raises(errors.ConfigError, match="not a positive integer"):
        label_spec(tree_lake, min_annotations=True)  # a bool is not a count
    with pytest.raises(errors.ConfigError, match="--min-images -3"):
        source_spec(tree_lake, min_images=-3)


def broken_lake(tree_lake: Lake, tmp_path: Path, parents: dict[str, str]) -> Lake:
    """A copy of the mini-lake whose benthic_attributes table (written as another tool might) has ``parents``."""
    root = tmp_path / "lake"
    shutil.copytree(Path(tree_lake.uri.key), root)
    rows = [{"id": ba, "name": name, "parent_id": parents.get(ba)} for ba, name in BA_NAMES.items()]
    write_deltalake(str(root / "tables" / "benthic_attributes"), pa.Table.from_pylist(rows, BENTHIC_ATTRIBUTES.schema),
                    mode="overwrite")
    return Lake.open(str(root))


def test_a_cycle_in_the_tree_is_one_line_not_an_endless_recursion(tree_lake: Lake, tmp_path: Path) -> None:
    """Bug pinned: a recursive CTE over parent_id must not loop forever on a cycle (T02 -> T04 -> T03 -> T02)."""
    lake = broken_lake(tree_lake, tmp_path, {**BA_PARENTS, T[2]: T[4]})
    result = CliRunner().invoke(app, ["spec", "rollups", "--to", "root", "--lake", str(lake.uri),
                                      "--output", str(tmp_path / "r.csv")])
    cycle = f"Acroporidae ({T[2]}) -> Acropora cervicornis ({T[4]}) -> Acropora ({T[3]}) -> Acroporidae ({T[2]})"
    assert_one_line_error(result, [f"benthic attribute parents form a cycle: {cycle} (and 2 more)",
                                   "benthic_attributes", "Fix: fix the parents"])
    assert not (tmp_path / "r.csv").exists()
    with pytest.raises(errors.TaxonomyError):
        rollup_spec(lake, "depth 2")


def test_an_unknown_parent_is_one_line(tree_lake: Lake, tmp_path: Path) -> None:
    ghost = "b7000000-0000-4000-8000-000000000077"
    lake = broken_lake(tree_lake, tmp_path, {**BA_PARENTS, T[13]: ghost})
    with pytest.raises(errors.TaxonomyError) as info:
        rollup_spec(lake, "root")
    assert str(info.value).count("\n") == 0
    assert f"has a parent that is no benthic attribute: Other ({T[13]}) -> ? ({ghost})" in str(info.value)
