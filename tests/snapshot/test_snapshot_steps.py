"""Golden cases, one per shaping step: hand-checked rows and per-step drop counts on the golden mini-lake.

Each ``tests/cases/step_*`` / ``warn_*`` folder holds the spec CSVs, ``case.json`` (options, expected drop
counts and warnings) and ``expected.csv`` (annotation_id, benthic_attribute_id, growth_form_id; the
``note`` column says why). Limit cases name the case whose rows they limit and the per-site quotas; the
test picks the rows itself with ``hashlib.md5`` (never the product's code).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from mermaid_data.errors import SnapshotError
from mermaid_data.lake import Lake
from mermaid_data.snapshot.build import REPORTS
from mermaid_data.snapshot.lifecycle import verify

from tests.snapshot.golden import (
    BA_NAMES,
    CASES,
    GF_NAMES,
    LABEL_MAPPINGS,
    case_names,
    cn_id,
    load_case,
    mermaid_id,
)

REASONS = ("unmapped_label", "mermaid_not_included", "source_not_selected", "label_not_included", "label_excluded",
           "missing_features", "over_limit")
ROW_COLUMNS = ["site", "source_id", "image_id", "row", "col", "label_id", "benthic_attribute_id",
               "benthic_attribute_name", "growth_form_id", "growth_form_name", "feature_key", "annotation_id",
               "occurrence", "updated_on"]


def read_expected(name: str) -> dict[str, tuple[str, str]]:
    with (CASES / name / "expected.csv").open(encoding="utf-8", newline="") as handle:
        return {r["annotation_id"]: (r["benthic_attribute_id"], r["growth_form_id"]) for r in csv.DictReader(handle)}


def site_of(annotation_id: str) -> str:
    return "coralnet" if annotation_id.startswith("cn-") else "mermaid"


def md5_choice(rows: dict[str, tuple[str, str]], quotas: dict[str, int]) -> dict[str, tuple[str, str]]:
    """Per site, the ``quota`` rows whose md5(annotation_id) hex digest sorts first (ties by id)."""
    chosen = {}
    for site, quota in quotas.items():
        ids = sorted((i for i in rows if site_of(i) == site), key=lambda i: (hashlib.md5(i.encode()).hexdigest(), i))
        chosen.update({i: rows[i] for i in ids[:quota]})
    return chosen


def snapshot_dir(lake: Lake, sid: str) -> Path:
    return Path(lake.uri.key) / "snapshots" / sid


def rows_of(lake: Lake, sid: str) -> pl.DataFrame:
    return pl.read_parquet(snapshot_dir(lake, sid) / "rows.parquet")


def dropped_csv(lake: Lake, sid: str) -> dict[str, int]:
    text = (snapshot_dir(lake, sid) / "dropped_by_reason.csv").read_text()
    return {r["reason"]: int(r["dropped"]) for r in csv.DictReader(io.StringIO(text))}


STEP_CASES = case_names("step_") + case_names("warn_")


@pytest.mark.parametrize("name", STEP_CASES)
def test_golden_case(golden_lake: Lake, name: str) -> None:
    case, spec = load_case(name)
    expect = case["expect"]
    result = golden_lake.create_snapshot(spec)
    manifest = result.manifest
    sid = result.snapshot_id

    if "limit_of" in expect:
        base = read_expected(expect["limit_of"])
        assert sum(expect["quotas"].values()) == min(spec.annotation_limit, len(base))
        wanted = md5_choice(base, expect["quotas"])
    else:
        wanted = read_expected(name)

    rows = rows_of(golden_lake, sid)
    got = {r["annotation_id"]: (r["benthic_attribute_id"], r["growth_form_id"]) for r in rows.iter_rows(named=True)}
    assert rows.height == len(got), "annotation_id must be unique in a snapshot"
    missing, extra = sorted(set(wanted) - set(got)), sorted(set(got) - set(wanted))
    assert not missing and not extra, f"{name}: rows missing {missing}, unexpected {extra}"
    relabelled = {i: (got[i], wanted[i]) for i in wanted if got[i] != wanted[i]}
    assert not relabelled, f"{name}: (got, expected) labels differ: {relabelled}"
    assert manifest["row_count"] == rows.height

    # per-stage accounting: manifest stage_counts and dropped_by_reason.csv agree with the case
    by_reason = {r["reason"]: r["dropped"] for r in manifest["stage_counts"] if r["reason"]}
    assert by_reason == expect["dropped"]
    assert dropped_csv(golden_lake, sid) == expect["dropped"]
    assert manifest["stage_counts"][0] == {"step": "0 lake", "reason": "", "dropped": 0, "remaining": 21}
    assert manifest["stage_counts"][-1]["remaining"] == rows.height
    assert 21 - sum(expect["dropped"].values()) == rows.height

    # warnings: exactly the expected ones (fragments), none otherwise
    warnings = manifest["warnings"]
    fragments = expect.get("warnings", [])
    for fragment in fragments:
        assert any(fragment in w for w in warnings), f"{fragment!r} not in {warnings}"
    if not fragments:
        assert warnings == []

    # row shape: the annotations_mapped columns with shaped ids plus taxonomy names, in a total order
    assert rows.columns == ROW_COLUMNS
    for r in rows.iter_rows(named=True):
        assert r["benthic_attribute_name"] == BA_NAMES[r["benthic_attribute_id"]]
        assert r["growth_form_name"] == GF_NAMES.get(r["growth_form_id"], "")
    order = rows.select("site", "source_id", "image_id", "row", "col", "annotation_id").rows()
    assert order == sorted(order)

    # every file the manifest lists is there and verifies
    assert set(manifest["files"]) == {"rows.parquet", *REPORTS}
    assert verify(str(snapshot_dir(golden_lake, sid)))["ok"]


def test_map_only_reports(golden_lake: Lake) -> None:
    """The CSV reports of the map-only case, checked against the golden sources by hand."""
    _, spec = load_case("step_map_only")
    result = golden_lake.create_snapshot(spec)
    folder = snapshot_dir(golden_lake, result.snapshot_id)
    m = result.manifest

    # duplicate points stay separate annotations and are counted: M08 (of M07) and s12 1201 (20,20) #2
    assert m["duplicate_points"] == 2
    rows = rows_of(golden_lake, result.snapshot_id)
    assert {mermaid_id(7), mermaid_id(8), cn_id("12", 1201, 20, 20, 1), cn_id("12", 1201, 20, 20, 2)} <= set(
        rows["annotation_id"].to_list())

    unmapped = pl.read_csv(folder / "unmapped_labels.csv", infer_schema=False)
    assert unmapped.rows() == [("11", "999", "1")]

    # mapping rows used: every label of the kept CoralNet rows; 107 resolves to its B2/G2 mapping (…172)
    used = pl.read_csv(folder / "label_mapping.csv", infer_schema=False)
    counts = dict(zip(used["label_id"].to_list(), map(int, used["annotations"].to_list())))
    assert counts == {"101": 2, "102": 2, "103": 1, "104": 1, "105": 2, "107": 1}
    chosen_107 = used.filter(pl.col("label_id") == "107")["mapping_id"].item()
    assert chosen_107 == next(m for m, label, _, ba, gf in LABEL_MAPPINGS if label == "107" and ba.endswith("2"))

    stats = pl.read_csv(folder / "project_stats.csv", infer_schema=False)
    got = {(r["site"], r["source_id"]): (int(r["images_before"]), int(r["annotations_before"]),
                                         int(r["images_after"]), int(r["annotations_after"]))
           for r in stats.iter_rows(named=True)}
    assert got == {
        ("mermaid", "mermaid"): (3, 9, 3, 9),
        ("coralnet", "11"): (2, 5, 2, 4),
        ("coralnet", "12"): (2, 5, 1, 3),
        ("coralnet", "13"): (1, 2, 1, 2),
    }

    ba = pl.read_csv(folder / "ba_counts.csv", infer_schema=False)
    assert sum(map(int, ba["annotations"].to_list())) == 18
    assert dict(zip(ba["benthic_attribute_name"].to_list(), map(int, ba["annotations"].to_list()))) == {
        "Acropora": 6, "Porites": 4, "Sand": 3, "Macroalgae": 2, "Turf algae": 2, "Hard coral": 1}
    bagf = pl.read_csv(folder / "bagf_counts.csv", infer_schema=False)
    classes = {(r["benthic_attribute_name"], r["growth_form_name"] or ""): int(r["annotations"])
               for r in bagf.iter_rows(named=True)}
    assert classes == {("Acropora", "Branching"): 4, ("Acropora", "Massive"): 2, ("Porites", "Massive"): 3,
                       ("Porites", ""): 1, ("Sand", ""): 3, ("Macroalgae", ""): 2, ("Turf algae", ""): 2,
                       ("Hard coral", ""): 1}
    assert m["label_counts"] == sorted(m["label_counts"], key=lambda r: (r["benthic_attribute_id"], r["growth_form_id"]))
    assert sum(r["annotations"] for r in m["label_counts"]) == 18

    # the rows file is plain Parquet anyone can read
    assert pq.read_metadata(folder / "rows.parquet").num_rows == 18


def test_limit_selects_the_same_rows_on_every_run(golden_lake: Lake, tmp_path: Path) -> None:
    """The limited rows are a function of the recipe: a rebuild at the pinned versions picks the same rows."""
    from mermaid_data.snapshot.lifecycle import rebuild

    _, spec = load_case("step_limit_5")
    sid = golden_lake.create_snapshot(spec).snapshot_id
    first = sorted(rows_of(golden_lake, sid)["annotation_id"].to_list())
    again = golden_lake.create_snapshot(spec)
    assert again.snapshot_id == sid and not again.created
    r = rebuild(golden_lake, sid)
    assert r["identical"] and r["row_count"] == 5
    assert sorted(rows_of(golden_lake, sid)["annotation_id"].to_list()) == first


@pytest.mark.parametrize("name", STEP_CASES)
def test_dry_run_counts_match_create(golden_lake: Lake, name: str) -> None:
    """Step 6 is counted two ways: a counting pass before writing (--dry-run, the limit, S3 lakes) or,
    without a limit, from the written rows against the rows that reached it. Both must agree."""
    _, spec = load_case(name)
    plan = golden_lake.create_snapshot(spec, dry_run=True)
    created = golden_lake.create_snapshot(spec)
    assert plan.snapshot_id == created.snapshot_id
    assert plan.manifest["stage_counts"] == created.manifest["stage_counts"]
    assert plan.manifest["row_count"] == created.manifest["row_count"]


@pytest.mark.parametrize("limit", [None, 100])
def test_missing_features_abort_leaves_nothing(golden_lake: Lake, limit: int | None) -> None:
    """Too many missing features abort with examples whether step 6 was counted before writing (with a
    limit) or from the written rows (without one); either way no snapshot folder is left behind."""
    _, spec = load_case("bad_features_abort")
    spec = dataclasses.replace(spec, annotation_limit=limit)
    root = Path(golden_lake.uri.key) / "snapshots"
    before = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    with pytest.raises(SnapshotError) as caught:
        golden_lake.create_snapshot(spec)
    assert "2 of 20 annotations (10.0%) have no feature object" in str(caught.value)
    assert "coralnet/12: s12/features/i1202.featurevector" in str(caught.value)
    after = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    assert after == before


def test_limit_one_gives_coralnet_a_zero_quota(golden_lake: Lake) -> None:
    """Limit 1 with both sites: MERMAID gets the odd row, CoralNet's quota is 0 and it keeps nothing
    (step 7 finds no cut row for a zero quota; it must not fall back to keeping the whole site)."""
    _, spec = load_case("step_map_only")
    result = golden_lake.create_snapshot(dataclasses.replace(spec, annotation_limit=1))
    wanted = md5_choice(read_expected("step_map_only"), {"mermaid": 1, "coralnet": 0})
    rows = rows_of(golden_lake, result.snapshot_id)
    assert rows["annotation_id"].to_list() == list(wanted)
    assert rows["site"].to_list() == ["mermaid"]
