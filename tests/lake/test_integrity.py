"""Nothing lost, nothing half-written, damage named: shrink guard, types checked before the first commit,
damaged Delta logs and data files named (and healed by ingest), and lake versions that readers pin."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mermaid_data.cli import app
from mermaid_data.demo import DemoSummary
from mermaid_data.errors import LakeDamagedError, ShrinkError, SourceFormatError
from mermaid_data.ingest import ingest
from mermaid_data.lake import Lake
from mermaid_data.snapshot import SnapshotSpec
from typer.testing import CliRunner

from tests.support.cli import one_line_error
from tests.support.processes import kill9, start_cli, wait_until

MERMAID_PARQUET = "mermaid/mermaid_confirmed_annotations.parquet"


@dataclass
class World:
    """A private copy of the demo sources and of a lake ingested from them."""

    root: Path

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def lake_dir(self) -> Path:
        return self.root / "lake"

    @property
    def lake(self) -> Lake:
        return Lake.open(str(self.lake_dir))

    @property
    def mermaid(self) -> Path:
        return self.src / MERMAID_PARQUET

    def ingest(self, **kw):
        return ingest(self.lake, mermaid_uri=str(kw.pop("mermaid", self.mermaid)),
                      coralnet_uri=str(kw.pop("coralnet", self.src / "coralnet")),
                      api=str(kw.pop("api", self.src / "api")), **kw)

    def cli(self, *extra: str, mermaid: Path | None = None, api: Path | None = None):
        return CliRunner().invoke(app, ["ingest", "--lake", str(self.lake_dir), "--mermaid", str(mermaid or self.mermaid),
                                        "--coralnet", str(self.src / "coralnet"), "--api", str(api or self.src / "api"),
                                        *extra], env={"COLUMNS": "250"})

    def commits(self) -> list[str]:
        return sorted(str(p.relative_to(self.lake_dir)) for p in self.lake_dir.glob("tables/*/_delta_log/*.json"))

    def count(self, query: str = "SELECT count(*) FROM annotations") -> int:
        return self.lake.sql(query).item()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, demo_sources: DemoSummary, ingest_demo) -> Path:
    root = tmp_path_factory.mktemp("integrity-base")
    shutil.copytree(demo_sources.dest, root / "src")
    ingest_demo(root / "lake", root / "src")
    return root


@pytest.fixture
def world(base: Path, tmp_path: Path) -> World:
    shutil.copytree(base, tmp_path / "w")
    return World(tmp_path / "w")


def rewrite_mermaid(world: World, change) -> pa.Table:
    table = change(pq.read_table(world.mermaid))
    pq.write_table(table, world.mermaid)
    return table


def empty_label_mappings(api: Path) -> None:
    for page in (api / "classification").glob("labelmappings*.json"):
        page.unlink()
    (api / "classification" / "labelmappings.json").write_text(
        json.dumps({"count": 0, "next": None, "previous": None, "results": []}))


# ------------------------------------------------------------------------------------------------
# nothing lost
# ------------------------------------------------------------------------------------------------


def test_an_empty_mermaid_export_is_refused_unless_allowed(world: World, demo_sources: DemoSummary) -> None:
    """Bug pinned: a 0-row MERMAID parquet replaced every MERMAID row with none (exit 0)."""
    rewrite_mermaid(world, lambda t: t.slice(0, 0))
    commits = world.commits()
    with pytest.raises(ShrinkError) as info:
        world.ingest()
    message = str(info.value)
    assert f"{demo_sources.mermaid_rows:,} rows of mermaid/mermaid" in message and "--allow-shrink" in message
    assert str(world.mermaid) in message
    assert world.commits() == commits
    line = one_line_error(world.cli())
    assert "--allow-shrink" in line and "nothing was written" in line
    assert world.commits() == commits and world.count() == demo_sources.total_rows

    report = world.ingest(allow_shrink=True)
    assert world.count("SELECT count(*) FROM annotations WHERE site = 'mermaid'") == 0
    assert any("mermaid/mermaid is now empty" in w for w in report.warnings), report.warnings


def test_an_empty_label_mapping_page_is_refused_unless_allowed(world: World) -> None:
    """Bug pinned: an empty label-mapping page left every CoralNet row unmapped (exit 0)."""
    mapped = world.count("SELECT count(*) FROM annotations_mapped WHERE site = 'coralnet'")
    empty_label_mappings(world.src / "api")
    commits = world.commits()
    with pytest.raises(ShrinkError, match="taxonomy table label_mappings"):
        world.ingest()
    assert world.commits() == commits
    assert world.count("SELECT count(*) FROM annotations_mapped WHERE site = 'coralnet'") == mapped
    line = one_line_error(world.cli())
    assert "label_mappings" in line and str(world.src / "api") in line  # the --api folder, not "the MERMAID API"
    world.cli("--allow-shrink")
    assert world.count("SELECT count(*) FROM annotations_mapped WHERE site = 'coralnet'") == 0


def test_a_large_drop_is_reported(world: World, demo_sources: DemoSummary) -> None:
    """Bug pinned: a source losing most of its rows went unremarked."""
    kept = rewrite_mermaid(world, lambda t: t.slice(0, t.num_rows // 4)).num_rows
    result = world.cli()
    assert result.exit_code == 0, result.output
    expected = f"mermaid/mermaid shrinks from {demo_sources.mermaid_rows:,} to {kept:,} rows"
    assert any(line.startswith("warning:") and expected in line for line in result.stderr.splitlines()), result.stderr
    assert world.count("SELECT count(*) FROM annotations WHERE site = 'mermaid'") == kept


# ------------------------------------------------------------------------------------------------
# every value and every type checked before the first commit
# ------------------------------------------------------------------------------------------------


def test_a_bad_updated_on_commits_nothing_not_even_the_taxonomy(world: World) -> None:
    """Bug pinned: an ingest whose MERMAID write failed (a bad `updated_on`) had already committed three
    taxonomy versions. The column's type is checked with everything else before the first commit."""
    pages = world.src / "api" / "benthicattributes.json"
    page = json.loads(pages.read_text())
    page["results"][0]["name"] += " (renamed)"  # the taxonomy changed: it would be written first
    pages.write_text(json.dumps(page))
    rewrite_mermaid(world, lambda t: t.set_column(t.schema.get_field_index("updated_on"), "updated_on",
                                                  pa.array(["not a date"] * t.num_rows)))
    commits = world.commits()
    with pytest.raises(SourceFormatError) as info:
        world.ingest()
    message = str(info.value)
    assert str(world.mermaid) in message and info.value.column == "updated_on"
    assert "type text" in message and "expected a timestamp" in message
    assert world.commits() == commits, "a failed ingest committed something"
    assert "updated_on" in one_line_error(world.cli())
    assert world.commits() == commits


@pytest.mark.parametrize("column, array", [
    ("row", lambda n: pa.array([10.0] * n)),
    ("col", lambda n: pa.array(["10"] * n)),
    ("image_id", lambda n: pa.array(list(range(n)))),
])
def test_a_column_of_another_type_is_an_error_not_a_cast(world: World, column: str, array) -> None:
    rewrite_mermaid(world, lambda t: t.set_column(t.schema.get_field_index(column), column, array(t.num_rows)))
    commits = world.commits()
    with pytest.raises(SourceFormatError, match=f"column '{column}' has type") as info:
        world.ingest()
    assert info.value.column == column and "expected" in str(info.value)
    assert world.commits() == commits


def test_the_part_of_a_glob_with_the_wrong_type_is_named(world: World) -> None:
    table = pq.read_table(world.mermaid)
    parts = world.src / "mermaid" / "parts"
    parts.mkdir()
    pq.write_table(table.slice(0, 100), parts / "part-0.parquet")
    bad = table.slice(100)
    pq.write_table(bad.set_column(bad.schema.get_field_index("row"), "row", pa.array(["1"] * bad.num_rows)),
                   parts / "part-1.parquet")
    with pytest.raises(SourceFormatError) as info:
        world.ingest(mermaid=parts / "*.parquet")
    assert str(parts / "part-1.parquet") in str(info.value) and info.value.column == "row"


# ------------------------------------------------------------------------------------------------
# damage is named, and ingest heals it
# ------------------------------------------------------------------------------------------------


def last_log(world: World, table: str) -> Path:
    return max((world.lake_dir / "tables" / table / "_delta_log").glob("*.json"))


def test_a_truncated_delta_log_names_the_table_and_version_and_the_fix_works(
    world: World, demo_sources: DemoSummary
) -> None:
    """Bug pinned: a truncated Delta log said "cannot read table … check the lake URI and storage credentials"."""
    built = CliRunner().invoke(app, ["snapshot", "create", "--annotation-limit", "50", "--lake", str(world.lake_dir)])
    assert built.exit_code == 0, built.output
    sid = world.lake.sql("SELECT max(snapshot_id) FROM snapshots").item()
    log = last_log(world, "annotations")
    version = int(log.stem)
    log.write_bytes(log.read_bytes()[: len(log.read_bytes()) // 2])
    with pytest.raises(LakeDamagedError) as info:
        world.lake.sql("SELECT count(*) FROM annotations")
    message = str(info.value)
    assert info.value.table == "annotations" and info.value.version == version
    assert str(log) in message and f"Delta log version {version}" in message and "credentials" not in message
    assert "mv " in message and "--repair" in message
    for command in (["sql", "SELECT 1"], ["history"], ["snapshot", "create"], ["vacuum"]):
        line = one_line_error(CliRunner().invoke(app, [*command, "--lake", str(world.lake_dir)], env={"COLUMNS": "250"}))
        assert f"Delta log version {version}" in line, (command, line)
    # Bug pinned: rebuild's line had two "Fix:" parts, the second one not a fix ("table annotations version
    # N is no longer readable")
    line = one_line_error(CliRunner().invoke(app, ["snapshot", "rebuild", sid, "--lake", str(world.lake_dir)],
                                             env={"COLUMNS": "250"}))
    assert f"Delta log version {version}" in line and line.count("Fix:") == 1 and "--repair" in line, line
    assert "Delta log version" in one_line_error(world.cli())
    # follow the fix: move it aside, repair
    log.rename(log.with_name(log.name + ".damaged"))
    result = world.cli("--repair")
    assert result.exit_code == 0, result.output
    assert world.count() == demo_sources.total_rows
    assert world.lake.sql("SELECT count(*) - count(DISTINCT annotation_id) FROM annotations").item() == 0


def test_a_bit_flipped_older_log_version_is_named(world: World) -> None:
    log = min((world.lake_dir / "tables" / "annotations" / "_delta_log").glob("*.json"))
    data = bytearray(log.read_bytes())
    data[0] ^= 0x5B ^ 0x7B  # the opening brace of the first action
    log.write_bytes(bytes(data))
    line = one_line_error(CliRunner().invoke(app, ["sql", "SELECT 1", "--lake", str(world.lake_dir)]))
    assert f"table 'annotations': Delta log version {int(log.stem)}" in line and "restore that file" in line


def partition_files(world: World, site: str, source: str) -> list[Path]:
    folder = world.lake_dir / "tables" / "annotations" / f"site={site}" / f"source_id={source}"
    referenced = set(world.lake.delta("annotations").file_uris())
    return [p for p in folder.rglob("*.parquet") if str(p) in referenced]


def test_a_missing_data_file_is_named_and_the_next_ingest_heals_it(world: World, demo_sources: DemoSummary) -> None:
    """Bug pinned: a missing lake data file gave a raw IOException; ingest could not heal the source."""
    source = min(p.name[1:] for p in (world.src / "coralnet").iterdir())
    gone = partition_files(world, "coralnet", source)[0]
    gone.unlink()
    with pytest.raises(LakeDamagedError) as info:
        world.lake.sql("SELECT count(*) FROM annotations")
    assert str(gone) in str(info.value) and "is missing" in str(info.value) and f"source_id={source}" in str(info.value)
    line = one_line_error(CliRunner().invoke(app, ["snapshot", "create", "--lake", str(world.lake_dir)]))
    assert str(gone) in line and "--repair" in line
    # an ingest without that source cannot heal it, and says so
    with pytest.raises(LakeDamagedError) as info:
        ingest(world.lake, mermaid_uri=str(world.mermaid), coralnet_uri=None, api=None)
    assert f"coralnet/{source}" in str(info.value) and "--repair" in str(info.value)
    report = world.ingest()
    assert [p.source_id for p in report.plan if p.action == "repair"] == [source]
    assert any(str(gone) in w for w in report.warnings), report.warnings
    assert world.count() == demo_sources.total_rows


def test_a_damaged_data_file_is_named_and_repair_heals_it(world: World, demo_sources: DemoSummary) -> None:
    """Bug pinned: a damaged lake data file gave "Out of buffer. Fix: check the SQL"."""
    damaged = partition_files(world, "mermaid", "mermaid")[0]
    data = bytearray(damaged.read_bytes())
    for offset in range(200, len(data) - 200, 97):
        data[offset] ^= 0xFF
    damaged.write_bytes(bytes(data))  # same size: only reading it finds the damage
    with pytest.raises(LakeDamagedError) as info:
        world.lake.sql("SELECT count(*), max(annotation_id), max(image_id) FROM annotations")
    assert str(damaged) in str(info.value) and "not readable Parquet" in str(info.value)
    with pytest.raises(LakeDamagedError, match="--repair"):  # sizes match: a plain ingest only names it
        world.ingest()
    report = world.ingest(repair=True)
    assert [(str(p.site), p.action) for p in report.changed] == [("mermaid", "repair")]
    assert world.count("SELECT count(*) FROM (SELECT max(annotation_id) FROM annotations)") == 1
    assert world.count() == demo_sources.total_rows


# ------------------------------------------------------------------------------------------------
# lake versions: one consistent state per completed ingest
# ------------------------------------------------------------------------------------------------


def test_history_and_as_of_speak_lake_versions(world: World, demo_sources: DemoSummary) -> None:
    """Bug pinned: `--as-of` said "other tables as of that commit's time" but pinned them to the next `sources`
    commit, and version 0 of annotations was half an ingest (MERMAID only). Lake version N is the state the
    N-th completed ingest left; `history` names the lake version of each commit."""
    lake = world.lake
    first = lake.lake_version()
    assert first.number == 0 and first.tables["annotations"] == 1  # MERMAID then CoralNet: two commits, one version
    history = lake.history()
    annotations = history.filter(history["table"] == "annotations")
    assert annotations["lake_version"].to_list() == [0, 0]
    assert all(v.tables["annotations"] != 0 for v in lake.lake_versions())  # no reader ever sees MERMAID alone
    csv = world.src / "coralnet" / min(p.name for p in (world.src / "coralnet").iterdir()) / "annotations.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines, lines[-1]]) + "\n")
    moment = datetime.now(UTC)
    world.ingest()
    assert lake.lake_version().number == 1
    assert lake.sql("SELECT count(*) FROM annotations", as_of=0).item() == demo_sources.total_rows
    assert lake.sql("SELECT count(*) FROM annotations", as_of=1).item() == demo_sources.total_rows + 1
    assert lake.sql("SELECT count(*) FROM annotations", as_of=moment.isoformat()).item() == demo_sources.total_rows
    with pytest.raises(Exception, match="no version at or before"):
        lake.sql("SELECT 1", as_of=(moment - timedelta(days=3650)).isoformat())
    line = one_line_error(CliRunner().invoke(app, ["sql", "SELECT 1", "--lake", str(world.lake_dir), "--as-of", "notadate"]))
    assert "notadate" in line
    out = CliRunner().invoke(app, ["history", "--lake", str(world.lake_dir)], env={"COLUMNS": "250"})
    assert out.exit_code == 0 and "lake_version" in out.stdout


def test_a_killed_ingest_is_never_seen_and_the_next_one_rolls_it_back(
    world: World, base: Path, demo_sources: DemoSummary
) -> None:
    """Bug pinned: readers saw the commits of an ingest that had not finished (annotations replaced, sources
    not yet): the lake was half old, half new. Readers pin the lake version; the next ingest rolls the
    leftovers back and redoes the work."""
    lake = world.lake
    before_version = lake.lake_version().number
    before_files = lake.versions()
    for source in sorted((world.src / "coralnet").iterdir())[:3]:
        csv = source / "annotations.csv"
        lines = csv.read_text().splitlines()
        csv.write_text("\n".join([*lines, lines[-1]]) + "\n")
    log = world.lake_dir / "tables" / "annotations" / "_delta_log"
    landed = False
    for _attempt in range(5):
        shutil.rmtree(world.lake_dir)
        shutil.copytree(base / "lake", world.lake_dir)
        newest = len(list(log.glob("*.json")))
        process = start_cli("ingest", "--lake", str(world.lake_dir), "--mermaid", str(world.mermaid),
                            "--coralnet", str(world.src / "coralnet"), "--api", str(world.src / "api"))
        wait_until(lambda n=newest: len(list(log.glob("*.json"))) > n, process)
        kill9(process)
        if lake.lake_version().number == before_version and len(list(log.glob("*.json"))) > newest:
            landed = True
            break
    assert landed, "never killed the ingest between its annotations commit and its sources commit"
    assert lake.raw_versions()["annotations"] > before_files["annotations"]
    assert lake.versions() == before_files  # readers stay on the last complete state
    assert world.count() == demo_sources.total_rows
    snapshot = lake.create_snapshot(SnapshotSpec(missing_features_allowed=100, annotation_limit=10))
    assert snapshot.manifest["recipe"]["input_versions"]["annotations"] == before_files["annotations"]
    report = world.ingest()
    assert any("rolled back annotations" in w for w in report.warnings), report.warnings
    assert world.count() == demo_sources.total_rows + 3
    assert lake.lake_version().number == before_version + 1
