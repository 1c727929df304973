"""The snapshot lifecycle through the CLI: dry run, list, show, diff, verify (and tampering), export, rebuild
(also after later ingests and after vacuum), SQL by ID, and concurrent creates."""

from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mermaid_data import sqlfiles
from mermaid_data.cli import app
from mermaid_data.lake import Lake
from mermaid_data.snapshot import SnapshotSpec
from mermaid_data.snapshot import build as build_mod
from mermaid_data.snapshot.lifecycle import rebuild
from typer.testing import CliRunner

from tests.snapshot.conftest import Golden
from tests.snapshot.golden import (
    B1,
    CASES,
    CORALNET_ROWS,
    LABEL_MAPPINGS,
    ingest_golden,
    load_case,
    taxonomy_payloads,
    write_coralnet_source,
)

WIDE = {"COLUMNS": "250"}
SNAP_ID = re.compile(r"snap-[0-9a-f]{16}")


def cli(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDE)


def snap_dir(lake: Lake, sid: str) -> Path:
    return Path(lake.uri.key) / "snapshots" / sid


@pytest.fixture(scope="module")
def lc(golden_src: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, str, str]:
    """A lake of its own with two snapshots: A = step_sources, B = step_include (rollups + include)."""
    uri = tmp_path_factory.mktemp("lifecycle") / "lake"
    ingest_golden(uri, golden_src)
    lake = Lake.open(str(uri))
    a = lake.create_snapshot(load_case("step_sources")[1]).snapshot_id
    b = lake.create_snapshot(load_case("step_include")[1]).snapshot_id
    return lake, a, b


# ------------------------------------------------------------------------------------------------
# create --dry-run, list, show
# ------------------------------------------------------------------------------------------------


def test_dry_run_prints_counts_and_writes_nothing(golden: Golden) -> None:
    lake = str(golden.lake.uri)
    before = sorted(p.relative_to(golden.root).as_posix() for p in (golden.root / "lake").rglob("*"))
    args = ["snapshot", "create", "--lake", lake, "--coralnet-sources", str(CASES / "step_map_only" / "sources.csv"),
            "--rollups", str(CASES / "step_rollup" / "rollups.csv"), "--missing-features-allowed", "20"]
    result = cli(*args, "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.output
    sid = SNAP_ID.search(out).group(0)
    assert f"dry run: snapshot {sid} would hold 18 rows; nothing written" in out
    assert re.search(r"1 map\s+│ unmapped_label\s+│\s+1 │\s+20", out), out
    assert re.search(r"6 features\s+│ missing_features\s+│\s+2 │\s+18", out), out
    assert "rollup chain" in out  # warnings are shown in a dry run too
    after = sorted(p.relative_to(golden.root).as_posix() for p in (golden.root / "lake").rglob("*"))
    assert after == before
    assert golden.lake.delta("snapshots") is None
    # the real create gets the ID the dry run announced
    result = cli(*args, "--name", "real")
    assert result.exit_code == 0, result.output
    assert f"created {sid}: 18 rows" in result.output
    result = cli(*args, "--name", "again")
    assert f"exists {sid}: 18 rows" in result.output and "nothing written" in result.output


def test_list_and_the_snapshots_table(lc) -> None:
    lake, a, b = lc
    result = cli("snapshot", "list", "--lake", str(lake.uri))
    assert result.exit_code == 0, result.output
    assert a in result.output and b in result.output and "step_sources" in result.output
    frame = lake.sql("SELECT snapshot_id, name, row_count, content_sha256, created_at FROM snapshots ORDER BY name")
    assert frame["snapshot_id"].to_list() == [b, a]
    assert frame["row_count"].to_list() == [12, 15]
    for sid, digest in zip(frame["snapshot_id"], frame["content_sha256"]):
        assert json.loads((snap_dir(lake, sid) / "manifest.json").read_text())["content_sha256"] == digest


def test_show_by_id_and_prefix(lc) -> None:
    lake, _a, b = lc
    full = cli("snapshot", "show", b, "--lake", str(lake.uri))
    assert full.exit_code == 0, full.output
    for prefix in (b[:9], b[5:12]):  # "snap-1234", or hex digits without "snap-"
        short = cli("snapshot", "show", prefix, "--lake", str(lake.uri))
        assert short.exit_code == 0, short.output
        assert short.output == full.output
    out = full.output
    assert f"{b} 'step_include'" in out and "12 rows" in out
    assert "inputs: annotations@v1, benthic_attributes@v0, features@v1, growth_forms@v0, label_mappings@v0" in out
    assert "options: " in out and "label_mode=include" in out and "missing_features_allowed=20.0" in out
    assert "spec include:" in out and "spec rollups:" in out and "spec sources:" in out
    assert re.search(r"5 include\s+│ label_not_included\s+│\s+6 │", out)
    assert "warning:" in out and "rollup chain" in out
    data = json.loads(cli("snapshot", "show", b, "--lake", str(lake.uri), "--json").output)
    assert data == json.loads((snap_dir(lake, b) / "manifest.json").read_text())


def test_show_unknown_and_ambiguous_ids(lc, tmp_path: Path) -> None:
    lake, a, _b = lc
    wrong = a[:-3] + ("000" if not a.endswith("000") else "111")
    result = cli("snapshot", "show", wrong, "--lake", str(lake.uri))
    assert result.exit_code == 2
    assert f"no snapshot '{wrong}'; nearest: " in result.output and a in result.output
    assert "snapshot list" in result.output and "Traceback" not in result.output
    result = cli("snapshot", "show", "snap-", "--lake", str(lake.uri))
    assert result.exit_code == 2 and "ambiguous" in result.output
    for command in (["show", "x"], ["verify", "x"], ["rebuild", "x"], ["export", "x", str(tmp_path / "e")]):
        result = cli("snapshot", *command, "--lake", str(lake.uri))
        assert result.exit_code == 2 and "no snapshot 'x'" in result.output, (command, result.output)


# ------------------------------------------------------------------------------------------------
# diff
# ------------------------------------------------------------------------------------------------


def test_diff_counts_rows_and_names_the_recipe_inputs(lc) -> None:
    lake, a, b = lc
    result = cli("snapshot", "diff", a, b, "--lake", str(lake.uri))
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"{a} (15 rows) → {b} (12 rows)" in out
    # by hand: B adds s12's two 1201 (20,20) rows, drops M02 M05 M08 and s11 1102's two rows,
    # and relabels M01 M04 M07 M09, s11 1101 (10,10), s13 (5,5) through the rollups
    assert "rows added 2, removed 5, relabelled 6" in out
    assert "recipe input specs.include: None → " in out
    assert "recipe input specs.rollups: None → " in out
    assert "recipe input specs.sources: " in out
    assert "recipe input options.label_mode: none → include" in out
    assert "recipe input options.missing_features_allowed: 5.0 → 20.0" in out
    assert "input_versions" not in out
    assert f"{B1}::" in out  # label counts changed (Hard coral grows through the rollups)
    # Bug pinned: the label changes showed UUID keys only; each key's row now carries its name
    row = next(line for line in out.splitlines() if f"{B1}::" in line)
    assert "Hard coral" in row, row
    same = cli("snapshot", "diff", a, a[:10], "--lake", str(lake.uri))
    assert "rows added 0, removed 0, relabelled 0" in same.output and "recipes are identical" in same.output


# ------------------------------------------------------------------------------------------------
# verify, tampering, export
# ------------------------------------------------------------------------------------------------


def test_verify_catches_tampered_files(golden: Golden) -> None:
    lake = str(golden.lake.uri)
    sid = golden.lake.create_snapshot(load_case("step_rollup")[1]).snapshot_id
    folder = snap_dir(golden.lake, sid)
    ok = cli("snapshot", "verify", sid, "--lake", lake)
    assert ok.exit_code == 0 and f"ok: {sid}" in ok.output

    report = folder / "ba_counts.csv"
    original = report.read_bytes()
    report.write_bytes(original + b"\n")
    bad = cli("snapshot", "verify", sid, "--lake", lake)
    assert bad.exit_code == 1
    assert "mismatch: ba_counts.csv: SHA-256" in bad.output
    report.write_bytes(original)
    assert cli("snapshot", "verify", sid, "--lake", lake).exit_code == 0

    rows_path = folder / "rows.parquet"
    pristine = rows_path.read_bytes()
    table = pq.read_table(rows_path)
    ba = table.column("benthic_attribute_id").to_pylist()
    ba[0] = B1 if ba[0] != B1 else ba[1]
    tampered = table.set_column(table.schema.get_field_index("benthic_attribute_id"), "benthic_attribute_id",
                                pa.array(ba, pa.string()))
    pq.write_table(tampered, rows_path)
    bad = cli("snapshot", "verify", sid, "--lake", lake)
    assert bad.exit_code == 1 and "mismatch: rows.parquet: SHA-256" in bad.output

    # a tamperer who also fixes the file hash in the manifest is caught by the row digest
    import hashlib

    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["rows.parquet"] = hashlib.sha256(rows_path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    bad = cli("snapshot", "verify", str(folder))
    assert bad.exit_code == 1 and "rows: content digest differs" in bad.output
    rows_path.write_bytes(pristine)

    (folder / "label_mapping.csv").unlink()
    bad = cli("snapshot", "verify", str(folder))
    assert bad.exit_code == 1 and "label_mapping.csv: missing" in bad.output


def test_export_is_self_contained_and_verifies_elsewhere(lc, tmp_path: Path) -> None:
    lake, _a, b = lc
    dest = tmp_path / "paper" / "dataset"
    result = cli("snapshot", "export", b[:10], str(dest), "--lake", str(lake.uri))
    assert result.exit_code == 0, result.output
    manifest = json.loads((dest / "manifest.json").read_text())
    assert sorted(p.name for p in dest.iterdir()) == sorted([*manifest["files"], "manifest.json"])
    moved = shutil.move(str(dest), str(tmp_path / "collaborator"))
    ok = cli("snapshot", "verify", moved)
    assert ok.exit_code == 0 and f"ok: {b}" in ok.output
    assert pl.read_parquet(Path(moved) / "rows.parquet").height == 12


# ------------------------------------------------------------------------------------------------
# rebuild, SQL by ID
# ------------------------------------------------------------------------------------------------


def test_rebuild_is_identical(lc) -> None:
    lake, a, b = lc
    for sid in (a, b):
        result = cli("snapshot", "rebuild", sid, "--lake", str(lake.uri))
        assert result.exit_code == 0, result.output
        digest = json.loads((snap_dir(lake, sid) / "manifest.json").read_text())["content_sha256"]
        assert f"identical: {sid} rebuilt to" in result.output and digest in result.output
    assert not list((Path(lake.uri.key) / "snapshots").glob(".rebuild-*"))


def test_rebuild_names_a_changed_sql_file(lc, tmp_path: Path) -> None:
    lake, _a, b = lc
    edited = tmp_path / "sql"
    shutil.copytree(sqlfiles.sql_dir(), edited)
    rollup = edited / "snapshot" / "04_rollup.sql"
    rollup.write_text(rollup.read_text().replace("r.to_ba_id", "NULL"))
    with sqlfiles.use_sql_dir(edited):
        result = cli("snapshot", "rebuild", b, "--lake", str(lake.uri))
    assert result.exit_code == 1, result.output
    assert f"different: {b}" in result.output
    assert "because: sql/snapshot/04_rollup.sql changed since the snapshot was built" in result.output


def test_snapshots_are_queryable_by_id(lc) -> None:
    lake, a, b = lc
    for sid, n in ((a, 15), (b, 12)):
        assert lake.sql(f"SELECT count(*) AS n FROM snapshot('{sid}')")["n"].item() == n
    joined = lake.sql(f"""
        SELECT s.snapshot_id, count(*) AS n FROM snapshots AS s, snapshot('{b}') AS r
        WHERE s.snapshot_id = '{b}' GROUP BY ALL""")
    assert joined.rows() == [(b, 12)]
    result = cli("sql", f"SELECT count(*) AS n FROM snapshot('{a}')", "--lake", str(lake.uri), "--format", "csv")
    assert result.exit_code == 0 and result.output.splitlines() == ["n", "15"]


# ------------------------------------------------------------------------------------------------
# THE KEY TEST: later ingests never change what an old snapshot rebuilds to
# ------------------------------------------------------------------------------------------------


def change_sources(golden: Golden, *, round: int) -> None:
    """Add a new CoralNet source, change an existing one, and map label 999 in the taxonomy."""
    write_coralnet_source(golden.src, f"{20 + round}", [(2001 + round, 1, 1, 101), (2001 + round, 2, 2, 103)])
    write_coralnet_source(golden.src, "11", CORALNET_ROWS["11"] + [(1102, 40 + round, 40, 106)])
    from mermaid_data.demo import write_api_pages

    bas, gfs, lms = taxonomy_payloads(
        LABEL_MAPPINGS + [(f"3a000000-0000-4000-8000-0000000009{round:02d}", "999", "Now mapped", B1, "")])
    shutil.rmtree(golden.src / "api")
    write_api_pages(golden.src / "api", bas, gfs, lms, page_size=4)


def test_rebuild_after_more_ingests_is_identical(golden: Golden) -> None:
    lake = golden.lake
    _, spec = load_case("step_rollup")
    old = lake.create_snapshot(spec)
    pinned = old.manifest["recipe"]["input_versions"]

    change_sources(golden, round=1)
    report = golden.reingest()
    assert {"annotations", "label_mappings", "features"} <= set(report.versions_written)
    now = lake.versions()
    assert now["annotations"] > pinned["annotations"] and now["label_mappings"] > pinned["label_mappings"]

    result = cli("snapshot", "rebuild", old.snapshot_id, "--lake", str(lake.uri))
    assert result.exit_code == 0, result.output
    assert f"identical: {old.snapshot_id} rebuilt to 18 rows, content_sha256 {old.manifest['content_sha256']}" in (
        result.output)
    assert cli("snapshot", "verify", old.snapshot_id, "--lake", str(lake.uri)).exit_code == 0

    # the same spec today is another snapshot: s11 grew by one row, and 999 is now mapped
    new = lake.create_snapshot(spec)
    assert new.created and new.snapshot_id != old.snapshot_id
    assert new.manifest["row_count"] == 20
    assert new.manifest["stage_counts"][0]["remaining"] == 24  # 21 + 1 (s11) + 2 (s21)
    diff = cli("snapshot", "diff", old.snapshot_id, new.snapshot_id, "--lake", str(lake.uri))
    assert "rows added 2, removed 0, relabelled 0" in diff.output, diff.output
    for table in ("annotations", "features", "label_mappings", "benthic_attributes"):
        assert (f"recipe input input_versions.{table}: " in diff.output) == (pinned[table] != now[table]), table
    assert "specs." not in diff.output and "options." not in diff.output

    assert lake.sql(f"SELECT count(*) AS n FROM snapshot('{old.snapshot_id}')")["n"].item() == 18
    listed = lake.sql("SELECT snapshot_id, row_count FROM snapshots ORDER BY row_count").rows()
    assert listed == [(old.snapshot_id, 18), (new.snapshot_id, 20)]


def test_vacuum_keeps_pinned_versions(golden: Golden) -> None:
    lake = golden.lake
    _, spec = load_case("step_rollup")
    old = lake.create_snapshot(spec)
    pinned = old.manifest["recipe"]["input_versions"]
    pinned_files = {t: set(lake.delta(t, v).file_uris()) for t, v in pinned.items()}

    change_sources(golden, round=1)
    golden.reingest()
    middle = lake.delta("annotations").version()
    middle_files = set(lake.delta("annotations", middle).file_uris())
    change_sources(golden, round=2)  # s11 changes again: the round-1 file of s11 is superseded, and unpinned
    golden.reingest()
    current_files = {t: set(lake.delta(t).file_uris()) for t in pinned}
    superseded = middle_files - pinned_files["annotations"] - current_files["annotations"]
    assert superseded, "the test needs an unpinned, superseded annotations file"

    dry = cli("vacuum", "--lake", str(lake.uri), "--dry-run")
    assert dry.exit_code == 0 and "would delete" in dry.output
    assert all(Path(f).exists() for f in superseded)
    result = cli("vacuum", "--lake", str(lake.uri))
    assert result.exit_code == 0, result.output
    deleted = {m.group(1): int(m.group(2)) for m in re.finditer(r"(\w+): deleted (\d+) file", result.output)}
    assert deleted["annotations"] >= len(superseded) and sum(deleted.values()) > 0
    assert not any(Path(f).exists() for f in superseded)
    for table, files in pinned_files.items():
        assert all(Path(f).exists() for f in files), f"vacuum deleted a file of pinned {table}@v{pinned[table]}"
    for table, files in current_files.items():
        assert all(Path(f).exists() for f in files), f"vacuum deleted a current file of {table}"

    r = rebuild(lake, old.snapshot_id)
    assert r["identical"], r
    assert lake.sql("SELECT count(*) AS n FROM annotations")["n"].item() == 21 + 1 + 2 + 2  # s11 + 1 row, s21, s22
    again = cli("vacuum", "--lake", str(lake.uri))
    assert "annotations: deleted 0 file(s)" in again.output


# ------------------------------------------------------------------------------------------------
# concurrency
# ------------------------------------------------------------------------------------------------


def test_two_concurrent_creates_publish_one_snapshot(golden: Golden, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both writers pass the "already exists?" check (a barrier holds them until both have), both build,
    exactly one publishes."""
    real_build = build_mod.build
    barrier = threading.Barrier(2, timeout=30)

    def build_after_both_checked(*args, **kwargs):
        barrier.wait()
        return real_build(*args, **kwargs)

    monkeypatch.setattr(build_mod, "build", build_after_both_checked)
    spec = SnapshotSpec(coralnet_sources_csv=CASES / "step_sources" / "sources.csv", name="race")
    results, failures = [], []

    def create() -> None:
        try:
            results.append(Lake.open(str(golden.lake.uri)).create_snapshot(spec))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    assert len({r.snapshot_id for r in results}) == 1
    assert sorted(r.created for r in results) == [False, True]
    assert results[0].manifest == results[1].manifest
    root = Path(golden.lake.uri.key) / "snapshots"
    assert [p.name for p in root.iterdir()] == [results[0].snapshot_id]
    assert golden.lake.sql("SELECT count(*) AS n FROM snapshots")["n"].item() == 1
    assert cli("snapshot", "verify", results[0].snapshot_id, "--lake", str(golden.lake.uri)).exit_code == 0


def test_two_concurrent_rebuilds_of_one_snapshot_both_succeed(lc, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rebuild A is held just after writing its rows while rebuild B of the same ID runs from start to end;
    B must not delete A's scratch files (each rebuild needs a scratch folder of its own)."""
    lake, _a, b = lc
    real_digest = build_mod.content_digest
    a_wrote, b_done = threading.Event(), threading.Event()
    first = threading.Lock()

    def digest(con, *args):
        if first.acquire(blocking=False):  # rebuild A
            a_wrote.set()
            assert b_done.wait(30)
        return real_digest(con, *args)

    monkeypatch.setattr(build_mod, "content_digest", digest)
    results, failures = {}, []

    def go(who: str) -> None:
        try:
            if who == "B":
                assert a_wrote.wait(30)
            results[who] = rebuild(lake, b)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append((who, exc))
        finally:
            if who == "B":
                b_done.set()

    threads = [threading.Thread(target=go, args=(who,)) for who in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    assert results["A"]["identical"] and results["B"]["identical"]
    assert not [p.name for p in (Path(lake.uri.key) / "snapshots").iterdir() if p.name.startswith(".")]


def test_a_snapshot_published_but_not_catalogued_is_catalogued_by_the_next_create(
    golden: Golden, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between publishing the folder and appending the ``snapshots`` row must not hide the snapshot
    from ``snapshot list`` / ``SELECT * FROM snapshots`` forever: the next create of the recipe repairs it."""
    real_record = build_mod._record

    def crash(*args, **kwargs):
        raise RuntimeError("killed between publish and record")

    monkeypatch.setattr(build_mod, "_record", crash)
    _, spec = load_case("step_sources")
    with pytest.raises(RuntimeError):
        golden.lake.create_snapshot(spec)
    monkeypatch.setattr(build_mod, "_record", real_record)
    again = golden.lake.create_snapshot(spec)
    assert not again.created
    assert golden.lake.sql("SELECT snapshot_id FROM snapshots")["snapshot_id"].to_list() == [again.snapshot_id]
    version = golden.lake.delta("snapshots").version()
    golden.lake.create_snapshot(spec)
    assert golden.lake.delta("snapshots").version() == version  # recorded once, then nothing more is written
