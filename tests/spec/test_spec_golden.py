"""Golden cases of ``mermaid-data spec``: each ``tests/spec/cases/<name>/`` runs one command on the spec
mini-lake (tests/spec/tree.py) and its output must equal ``expected.csv`` byte for byte (rows, names, order).

The expected files were worked out by hand from the legend in ``tests/spec/cases/README.md``; the
``description`` of each ``case.json`` says what the case pins.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from mermaid_data.cli import app
from mermaid_data.lake import Lake
from mermaid_data.snapshot.spec import read_spec_csv
from mermaid_data.specs import RollupLevel, label_spec, rollup_spec, source_spec
from typer.testing import CliRunner

CASES = Path(__file__).resolve().parent / "cases"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "case.json").is_file())


def case_args(name: str) -> tuple[dict, list[str]]:
    case = json.loads((CASES / name / "case.json").read_text(encoding="utf-8"))
    args = [a.replace("{case}", str(CASES / name)).replace("{cases}", str(CASES)) for a in case["args"]]
    return case, args


def run_spec(lake: Lake, args: list[str], output: Path | None = None):
    extra = ["--lake", str(lake.uri)] + (["--output", str(output)] if output else [])
    return CliRunner().invoke(app, ["spec", *args, *extra])


def test_every_kind_has_cases() -> None:
    assert {n.split("_")[0] for n in NAMES} == {"rollups", "labels", "sources"}
    assert len(NAMES) >= 15


@pytest.mark.parametrize("name", NAMES)
def test_golden_case(tree_lake: Lake, tmp_path: Path, name: str) -> None:
    case, args = case_args(name)
    out = tmp_path / "out.csv"
    result = run_spec(tree_lake, args, out)
    assert result.exit_code == 0, result.output
    expected = (CASES / name / case["expected"]).read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == expected
    # without --output the same CSV goes to stdout, and the summary line to stderr only
    printed = run_spec(tree_lake, args)
    assert printed.exit_code == 0 and printed.stdout == expected
    assert printed.stderr.startswith("wrote ") and printed.stderr.count("\n") == 1


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("rollups_")])
def test_rollup_output_is_what_snapshot_create_reads(tree_lake: Lake, name: str) -> None:
    """Every generated rollup file parses as a --rollups CSV; no rule's target is another rule's source."""
    table = read_spec_csv(CASES / name / "expected.csv", "rollups")
    sources = {(r[0], r[1]) for r in table.rows}
    assert not [r for r in table.rows if (r[2], r[3]) in sources]
    assert not [r for r in table.rows if (r[0], r[1]) == (r[2], r[3])]


def test_root_and_depth_1_are_the_same_level(tree_lake: Lake) -> None:
    root = rollup_spec(tree_lake, RollupLevel.root())
    assert root.frame.equals(rollup_spec(tree_lake, "depth 1").frame)
    assert root.frame.equals(rollup_spec(tree_lake, RollupLevel.at_depth(1)).frame)
    for spelling in ("depth:1", "DEPTH 1", " depth=1 "):
        assert rollup_spec(tree_lake, spelling).frame.equals(root.frame)


def test_python_api_returns_the_cli_rows(tree_lake: Lake, tmp_path: Path) -> None:
    """The functions behind the commands: frozen results with frames, descriptions, versions, a writer."""
    rollups = rollup_spec(tree_lake, "depth 2")
    assert rollups.kind == "rollups" and rollups.rows == 9
    assert rollups.input_versions["benthic_attributes"] == tree_lake.versions()["benthic_attributes"]
    assert "depth 2" in rollups.description and "growth forms kept" in rollups.description
    written = rollups.write(tmp_path / "r.csv")
    assert written.read_text() == (CASES / "rollups_depth2" / "expected.csv").read_text()
    with pytest.raises(AttributeError):
        rollups.frame = None  # frozen

    labels = label_spec(tree_lake, min_annotations=2, top=5, rollups_csv=written,
                        coralnet_sources_csv=CASES / "sources_all.csv")
    assert labels.write(tmp_path / "l.csv").read_text() == (CASES / "labels_top5" / "expected.csv").read_text()
    # every class counted is kept or dropped with its reason, and the totals add up (26 mapped annotations)
    assert labels.counted.height == 9 and labels.classes_kept == 5 and labels.classes_dropped == 4
    assert labels.annotations_kept == 6 + 5 + 4 + 3 + 2 and labels.annotations_dropped == 2 + 2 + 1 + 1
    assert labels.dropped_for("not_in_top") == (2, 4) and labels.dropped_for("fewer_annotations") == (2, 2)
    assert labels.summary().startswith("5 class(es) kept (20 annotations) of 9 counted")
    assert "2 dropped: fewer than 2 annotations (2 annotations)" in labels.summary()
    assert "2 dropped: not in the top 5 (4 annotations)" in labels.summary()

    sources = source_spec(tree_lake, min_images=2)
    assert sources.frame["id"].to_list() == ["21", "23"]
    assert sources.to_csv() == (CASES / "sources_min2" / "expected.csv").read_text()


def test_label_counts_are_counted_before_include(tree_lake: Lake, tmp_path: Path) -> None:
    """Bug pinned: the counts must be the snapshot's own steps 1-4, so a snapshot with --include of the
    whole list keeps exactly that many rows (every image of the mini-lake has features)."""
    labels = label_spec(tree_lake, min_annotations=1, rollups_csv=CASES / "rollups_depth2" / "expected.csv",
                        coralnet_sources_csv=CASES / "sources_all.csv")
    include = labels.write(tmp_path / "include.csv")
    result = CliRunner().invoke(app, [
        "snapshot", "create", "--lake", str(tree_lake.uri), "--coralnet-sources", str(CASES / "sources_all.csv"),
        "--rollups", str(CASES / "rollups_depth2" / "expected.csv"), "--include", str(include)])
    assert result.exit_code == 0, result.output
    sid = result.output.split("created ")[1].split(":")[0]
    counts = tree_lake.sql(f"SELECT benthic_attribute_id AS ba_id, growth_form_id AS gf_id, count(*) AS n "
                           f"FROM snapshot('{sid}') GROUP BY ALL")
    snapshot_counts = {(r[0], r[1]): r[2] for r in counts.rows()}
    listed = {(r["ba_id"], r["gf_id"] or ""): int(r["annotations"])
              for r in csv.DictReader(io.StringIO(include.read_text()))}
    assert snapshot_counts == listed
    assert sum(listed.values()) == 26  # 16 MERMAID + 10 mapped CoralNet annotations
