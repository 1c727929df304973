"""Snapshots that cannot lie or be lost: export never overwrites, verify checks the ID, one catalog row per ID
(kill -9 and real concurrent creates), dead creates' leftovers reclaimed, vacuum never pulls files from under a
running create, and a damaged manifest is one line."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from mermaid_data.lake import Lake
from mermaid_data.snapshot import SnapshotSpec
from mermaid_data.snapshot import build as build_mod
from mermaid_data.snapshot.build import build_recipe
from mermaid_data.snapshot.lifecycle import verify
from mermaid_data.storage import delta_storage_options
from mermaid_data.tables import SNAPSHOTS

from tests.snapshot.conftest import Golden
from tests.snapshot.golden import CASES, ingest_golden, load_case
from tests.snapshot.test_snapshot_lifecycle import change_sources, cli, snap_dir
from tests.support.cli import one_line_error
from tests.support.processes import error_lines, finish, kill9, resume, run_cli, start_cli, stop, wait_until

SOURCES_ALL = CASES / "step_map_only" / "sources.csv"


def tree_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def two(golden_src: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, str, str]:
    """A lake of its own with snapshots A (step_sources) and B (step_include)."""
    uri = tmp_path_factory.mktemp("integrity") / "lake"
    ingest_golden(uri, golden_src)
    lake = Lake.open(str(uri))
    a = lake.create_snapshot(load_case("step_sources")[1]).snapshot_id
    b = lake.create_snapshot(load_case("step_include")[1]).snapshot_id
    return lake, a, b


# ------------------------------------------------------------------------------------------------
# export and verify
# ------------------------------------------------------------------------------------------------


def test_export_never_overwrites_a_snapshot_or_anything_else(two, tmp_path: Path) -> None:
    """Bug pinned: `snapshot export B <lake>/snapshots/A` overwrote published snapshot A (and `verify A`
    then printed "ok: B"). Export refuses any destination inside a lake, a non-empty folder and a file."""
    lake, a, b = two
    a_dir = snap_dir(lake, a)
    before = tree_digest(a_dir)
    line = one_line_error(cli("snapshot", "export", b, str(a_dir), "--lake", str(lake.uri)))
    assert "inside the lake" in line and str(a_dir) in line and "Fix:" in line
    assert tree_digest(a_dir) == before
    # anywhere else inside this lake, or inside another lake
    other = tmp_path / "other-lake"
    shutil.copytree(lake.uri.key, other, ignore=shutil.ignore_patterns("snapshots"))
    for dest in (Path(lake.uri.key) / "exports" / "x", Path(lake.uri.key), other / "exports" / "b"):
        line = one_line_error(cli("snapshot", "export", b, str(dest), "--lake", str(lake.uri)))
        assert "inside the lake" in line, (dest, line)
        assert not dest.exists() or dest == Path(lake.uri.key)
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert "is not empty" in one_line_error(cli("snapshot", "export", b, str(full), "--lake", str(lake.uri)))
    assert [p.name for p in full.iterdir()] == ["notes.txt"]
    (tmp_path / "a-file").write_text("x")
    assert "is a file" in one_line_error(cli("snapshot", "export", b, str(tmp_path / "a-file"), "--lake", str(lake.uri)))
    # a new folder and an empty one are fine
    for dest in (tmp_path / "new" / "dataset", tmp_path / "empty"):
        if dest.name == "empty":
            dest.mkdir()
        result = cli("snapshot", "export", b, str(dest), "--lake", str(lake.uri))
        assert result.exit_code == 0, result.output
        assert verify(str(dest))["ok"]
    assert verify(str(a_dir))["ok"] and verify(str(a_dir))["snapshot_id"] == a


def test_verify_checks_the_id_against_the_folder_the_recipe_and_the_catalog(two, tmp_path: Path) -> None:
    """Bug pinned: after B's files were copied over A, `snapshot verify A` said "ok: B". Verify checks that the
    manifest's ID is its folder's name, is the ID of its recipe, and is in the lake's catalog with its digest."""
    lake, a, b = two
    fake_lake = tmp_path / "lake"
    shutil.copytree(lake.uri.key, fake_lake)
    a_dir, b_dir = fake_lake / "snapshots" / a, fake_lake / "snapshots" / b
    for item in b_dir.iterdir():  # what the old export did
        shutil.copyfile(item, a_dir / item.name)
    result = cli("snapshot", "verify", a, "--lake", str(fake_lake))
    assert result.exit_code == 1, result.output
    assert f"names {b} but the folder is {a}" in result.output
    assert f"ok: {b}" not in result.output

    manifest_path = b_dir / "manifest.json"
    data = json.loads(manifest_path.read_text())
    data["snapshot_id"] = a  # a manifest claiming another ID than its recipe's
    manifest_path.write_text(json.dumps(data))
    problems = verify(str(b_dir))["problems"]
    assert any(f"its ID {a} is not the ID of its recipe ({b})" in p for p in problems), problems

    copy = tmp_path / "exported" / a  # an export named like the ID, outside a lake: no catalog to check
    shutil.copytree(snap_dir(lake, a), copy)
    assert verify(str(copy)) == {"ok": True, "problems": [], "snapshot_id": a}


def test_verify_names_a_snapshot_missing_from_the_catalog(golden: Golden, monkeypatch: pytest.MonkeyPatch) -> None:
    """A published folder whose catalog row was never written is reported, and the next create repairs it."""
    monkeypatch.setattr(build_mod, "_record", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    _, spec = load_case("step_sources")
    with pytest.raises(RuntimeError):
        golden.lake.create_snapshot(spec)
    monkeypatch.undo()
    sid = build_recipe(golden.lake, spec).snapshot_id
    result = verify(str(snap_dir(golden.lake, sid)))
    assert not result["ok"] and result["problems"] == [f"catalog: the lake's snapshots table has no row for {sid}"]
    golden.lake.create_snapshot(spec)
    assert verify(str(snap_dir(golden.lake, sid)))["ok"]


# ------------------------------------------------------------------------------------------------
# the catalog: one ID, one row
# ------------------------------------------------------------------------------------------------


def catalog_rows(lake: Lake, sid: str) -> int:
    table = lake.read(SNAPSHOTS.name, ["snapshot_id"])
    return 0 if table is None else table.column(0).to_pylist().count(sid)


def test_kill_after_publish_then_three_concurrent_creates_leave_one_catalog_row(
    golden_src: Path, tmp_path: Path
) -> None:
    """Bug pinned: `kill -9` of a create right after its folder appeared, then three concurrent creates of the
    same recipe, left three `snapshots` rows for one ID (`snapshot list` showed it three times)."""
    base = tmp_path / "base"
    ingest_golden(base, golden_src)
    sources = str(SOURCES_ALL)
    sid = build_recipe(Lake.open(str(base)), SnapshotSpec(coralnet_sources_csv=sources,
                                                          missing_features_allowed=50)).snapshot_id
    create = ("snapshot", "create", "--lake", "{lake}", "--coralnet-sources", sources, "--missing-features-allowed", "50")
    for attempt in range(6):  # the kill must land between the folder's rename and the catalog append
        lake_dir = tmp_path / f"lake{attempt}"
        shutil.copytree(base, lake_dir)
        lake = Lake.open(str(lake_dir))
        process = start_cli(*(a.format(lake=lake_dir) for a in create))
        published = lake_dir / "snapshots" / sid / "manifest.json"
        wait_until(published.exists, process)
        if process.poll() is not None:
            assert process.returncode == 0, process.communicate()[1]
        kill9(process)
        if published.exists() and catalog_rows(lake, sid) == 0:
            break
    else:
        pytest.fail("the kill never landed between publishing and cataloguing")
    creates = [start_cli(*(a.format(lake=lake_dir) for a in create)) for _ in range(3)]
    for process in creates:
        code, out, err = finish(process)
        assert code == 0, err
        assert f"exists {sid}" in out or f"created {sid}" in out, out
    assert catalog_rows(lake, sid) == 1
    listed = run_cli("snapshot", "list", "--lake", str(lake_dir))
    assert listed.returncode == 0 and listed.stdout.count(sid) == 1, listed.stdout
    assert lake.sql(f"SELECT count(*) FROM snapshots WHERE snapshot_id = '{sid}'").item() == 1


def test_a_lake_with_repeated_catalog_rows_lists_each_id_once(two) -> None:
    """Lakes written before the catalog lock may hold repeated rows for one ID: the `snapshots` view and
    `snapshot list` show one row per ID (the earliest)."""
    lake, a, _b = two
    rows = lake.read(SNAPSHOTS.name).to_pylist()
    first = next(r for r in rows if r["snapshot_id"] == a)
    duplicate = dict(first, name="a later duplicate", created_at=first["created_at"] + timedelta(seconds=3))
    write_deltalake(lake.table_uri(SNAPSHOTS.name), pa.Table.from_pylist([duplicate], schema=SNAPSHOTS.schema),
                    mode="append", storage_options=delta_storage_options())
    assert catalog_rows(lake, a) == 2
    assert lake.sql(f"SELECT name FROM snapshots WHERE snapshot_id = '{a}'")["name"].to_list() == ["step_sources"]
    listed = cli("snapshot", "list", "--lake", str(lake.uri))
    assert listed.exit_code == 0 and listed.output.count(a) == 1 and "a later duplicate" not in listed.output


# ------------------------------------------------------------------------------------------------
# leftovers and vacuum during a create
# ------------------------------------------------------------------------------------------------


def scratch_dirs(lake_dir: Path) -> list[Path]:
    root = lake_dir / "snapshots"
    return sorted(p for p in root.iterdir() if p.name.startswith(".tmp-")) if root.exists() else []


def start_create_and(lake_dir: Path, then, attempts: int = 5, *, written: bool = False):
    """Start a real create and call ``then(process)`` while its scratch folder exists (with ``written``: once
    a file is in it), retried if the create was too quick to catch."""
    def caught() -> bool:
        return any(not written or any(d.iterdir()) for d in scratch_dirs(lake_dir))

    for _ in range(attempts):
        process = start_cli("snapshot", "create", "--lake", str(lake_dir), "--coralnet-sources", str(SOURCES_ALL),
                            "--missing-features-allowed", "50")
        if wait_until(caught, process) and process.poll() is None:
            return then(process)
        finish(process)
        for published in (lake_dir / "snapshots").glob("snap-*"):
            shutil.rmtree(published)
    pytest.fail("never caught a create while its scratch folder existed")


def test_a_killed_create_leaves_nothing_the_next_create_or_vacuum_does_not_reclaim(golden: Golden) -> None:
    """Bug pinned: a killed `snapshot create` left `snapshots/.tmp-snap-*` forever. The next create and
    `vacuum` delete what a dead create left."""
    lake_dir = Path(golden.lake.uri.key)

    def kill(process):
        kill9(process)
        return scratch_dirs(lake_dir)

    left = start_create_and(lake_dir, kill, written=True)
    assert left, "the killed create should have left its scratch folder"
    dry = cli("vacuum", "--lake", str(lake_dir), "--dry-run")
    assert dry.exit_code == 0 and "snapshots (unfinished): would delete" in dry.output
    assert "snapshots (unfinished): would delete 0" not in dry.output
    assert all(p.exists() for p in left)
    result = cli("vacuum", "--lake", str(lake_dir))
    assert result.exit_code == 0, result.output
    assert not scratch_dirs(lake_dir) and not any((lake_dir / "_locks").rglob("*.json"))

    left = start_create_and(lake_dir, kill)  # the next create cleans up too
    assert left
    result = cli("snapshot", "create", "--lake", str(lake_dir), "--coralnet-sources", str(SOURCES_ALL),
                 "--missing-features-allowed", "50")
    assert result.exit_code == 0, result.output
    assert not scratch_dirs(lake_dir)


def test_vacuum_during_a_create_keeps_what_the_create_reads(golden: Golden) -> None:
    """Bug pinned: vacuum during a create deleted files of the version the create had pinned (superseded by
    an ingest meanwhile), and the create died with a raw IOException. The create's lease pins its versions
    and its scratch folder; vacuum keeps both and the create finishes."""
    lake, lake_dir = golden.lake, Path(golden.lake.uri.key)
    pinned = lake.versions()["annotations"]
    pinned_files = set(lake.delta("annotations", pinned).file_uris())

    def while_stopped(process):
        stop(process)
        try:
            scratch = scratch_dirs(lake_dir)
            change_sources(golden, round=1)
            ingested = run_cli("ingest", "--lake", str(lake_dir), "--mermaid", str(golden.src / "mermaid" /
                               "mermaid_confirmed_annotations.parquet"), "--coralnet", str(golden.src / "coralnet"),
                               "--api", str(golden.src / "api"))
            assert ingested.returncode == 0, ingested.stderr
            superseded = pinned_files - set(Lake.open(str(lake_dir)).delta("annotations").file_uris())
            assert superseded, "the ingest should supersede a file the create pinned"
            vacuumed = run_cli("vacuum", "--lake", str(lake_dir))
            assert vacuumed.returncode == 0, vacuumed.stderr
            assert all(Path(f).exists() for f in pinned_files), "vacuum deleted a file the running create reads"
            assert scratch_dirs(lake_dir) == scratch, "vacuum deleted the running create's scratch folder"
        finally:
            resume(process)
        return finish(process)

    code, out, err = start_create_and(lake_dir, while_stopped)
    assert code == 0, err
    assert not error_lines(err)
    sid = out.split("created ", 1)[1].split(":", 1)[0]
    assert json.loads((snap_dir(lake, sid) / "manifest.json").read_text())["recipe"]["input_versions"][
        "annotations"] == pinned
    assert cli("snapshot", "verify", sid, "--lake", str(lake_dir)).exit_code == 0
    rebuilt = cli("snapshot", "rebuild", sid, "--lake", str(lake_dir))
    assert rebuilt.exit_code == 0 and "identical" in rebuilt.output


# ------------------------------------------------------------------------------------------------
# a damaged manifest
# ------------------------------------------------------------------------------------------------


def test_a_truncated_manifest_is_one_line_everywhere(two, tmp_path: Path) -> None:
    """Bug pinned: a truncated manifest.json made verify/show/rebuild/vacuum print a JSONDecodeError traceback."""
    lake, _a, b = two
    damaged = tmp_path / "lake"
    shutil.copytree(lake.uri.key, damaged)
    manifest = damaged / "snapshots" / b / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[: 200])
    for command in (["snapshot", "verify", b], ["snapshot", "show", b], ["snapshot", "rebuild", b], ["vacuum"],
                    ["vacuum", "--dry-run"]):
        line = one_line_error(cli(*command, "--lake", str(damaged)))
        assert str(manifest) in line and "manifest.json is damaged" in line and "Fix:" in line, (command, line)
    line = one_line_error(cli("snapshot", "verify", str(manifest.parent)))
    assert "manifest.json is damaged" in line
