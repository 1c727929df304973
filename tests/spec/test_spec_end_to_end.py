"""Each spec command's output fed to ``snapshot create`` (CLI) and to the seed's ``DatasetOptions``.

Runs on the tiny demo lake. Nothing here knows the demo's taxonomy: ids, depths and counts are read
from the lake, and the expected snapshots are worked out here in plain Python (parent walks, dict
counts) from ``annotations_mapped`` and the generated CSVs, never with the product's SQL.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from mermaid_data.cli import app
from mermaid_data.lake import Lake
from typer.testing import CliRunner

from tests.support.mlflow_server import session_train_lake


@dataclass(frozen=True)
class Taxonomy:
    parents: dict[str, str | None]

    def chain(self, ba: str) -> list[str]:
        """``ba`` and its ancestors, the root last."""
        out = [ba]
        while self.parents.get(out[-1]):
            out.append(self.parents[out[-1]])
        return out

    def depth(self, ba: str) -> int:
        return len(self.chain(ba))

    def at_depth(self, ba: str, depth: int) -> str:
        chain = self.chain(ba)
        return chain[max(len(chain) - depth, 0)]


@pytest.fixture(scope="module")
def lake(request: pytest.FixtureRequest) -> Lake:
    return session_train_lake(request)


@pytest.fixture(scope="module")
def taxonomy(lake: Lake) -> Taxonomy:
    return Taxonomy(dict(lake.sql("SELECT id, parent_id FROM benthic_attributes").rows()))


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def create(lake: Lake, *options: str) -> tuple[str, dict, pl.DataFrame]:
    """``snapshot create`` on the command line: its ID, manifest and rows."""
    output = cli("snapshot", "create", "--lake", str(lake.uri), *options)
    sid = re.search(r"(?:created|exists) (snap-[0-9a-f]{16})", output).group(1)
    folder = Path(lake.uri.key) / "snapshots" / sid
    return sid, json.loads((folder / "manifest.json").read_text()), pl.read_parquet(folder / "rows.parquet")


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def middle(values) -> int:
    """The middle of the distinct values: above the smallest, so a threshold there drops something."""
    distinct = sorted(set(values))
    assert len(distinct) > 1
    return distinct[len(distinct) // 2]


def remaining_after(manifest: dict, step: str) -> int:
    return [r["remaining"] for r in manifest["stage_counts"] if r["step"] == step][-1]


@pytest.fixture(scope="module")
def sources_csv(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """``spec sources`` at a threshold (the middle images-per-source value) that keeps some sources, not all."""
    images = {s: n for s, n in lake.sql(
        "SELECT source_id, count(DISTINCT image_id) FROM annotations WHERE site = 'coralnet' GROUP BY ALL").rows()}
    threshold = middle(images.values())
    expected = {s for s, n in images.items() if n >= threshold}
    assert 0 < len(expected) < len(images), "the demo's sources should differ in size"
    path = tmp_path_factory.mktemp("spec-e2e") / "sources.csv"
    cli("spec", "sources", "--min-images", str(threshold), "--lake", str(lake.uri), "--output", str(path))
    rows = read_csv(path)
    assert {r["id"] for r in rows} == expected
    assert [int(r["images"]) for r in rows] == sorted((images[s] for s in expected), reverse=True)
    return path, expected


@pytest.fixture(scope="module")
def base(lake: Lake, sources_csv) -> tuple[str, dict, pl.DataFrame]:
    """The snapshot of MERMAID + the selected sources, no shaping."""
    return create(lake, "--coralnet-sources", str(sources_csv[0]))


def test_sources_csv_selects_those_sources(base, sources_csv) -> None:
    _sid, _manifest, rows = base
    assert set(rows.filter(pl.col("site") == "coralnet")["source_id"].unique()) == sources_csv[1]
    assert rows.filter(pl.col("site") == "mermaid").height > 0


@pytest.mark.parametrize("level, drop", [("root", False), ("root", True), ("deepest-1", False)])
def test_rollups_csv_moves_every_row_to_its_ancestor(lake: Lake, taxonomy: Taxonomy, base, sources_csv,
                                                     tmp_path: Path, level: str, drop: bool) -> None:
    # one level above the deepest BA the snapshot holds, so that some rows move
    deepest = max(taxonomy.depth(ba) for ba in base[2]["benthic_attribute_id"].unique())
    depth = 1 if level == "root" else max(1, deepest - 1)
    path = tmp_path / "rollups.csv"
    cli("spec", "rollups", "--to", f"depth {depth}" if depth > 1 else "root", "--lake", str(lake.uri),
        "--output", str(path), *(["--drop-growthforms"] if drop else []))
    _sid, manifest, rows = create(lake, "--coralnet-sources", str(sources_csv[0]), "--rollups", str(path))
    assert manifest["warnings"] == []  # no chains, no unknown ids
    before = base[2].select("annotation_id", "benthic_attribute_id", "growth_form_id")
    joined = before.join(rows.select("annotation_id", pl.col("benthic_attribute_id").alias("ba"),
                                     pl.col("growth_form_id").alias("gf")), on="annotation_id", how="full")
    assert joined.height == before.height == rows.height  # rollups move rows, never drop or add them
    moved = 0
    for ba, gf, new_ba, new_gf in joined.select("benthic_attribute_id", "growth_form_id", "ba", "gf").rows():
        assert new_ba == taxonomy.at_depth(ba, depth)
        assert new_gf == ("" if drop else gf)
        moved += (ba, gf) != (new_ba, new_gf)
    assert moved > 0
    assert max(taxonomy.depth(ba) for ba in rows["benthic_attribute_id"].unique()) <= depth


@pytest.fixture(scope="module")
def recipe(lake: Lake, sources_csv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A rollups CSV (to the root, growth forms kept) and the include CSV of the classes it leaves with
    at least the middle count, both written by the spec commands."""
    folder = tmp_path_factory.mktemp("spec-recipe")
    rollups, include = folder / "rollups.csv", folder / "include.csv"
    cli("spec", "rollups", "--to", "root", "--lake", str(lake.uri), "--output", str(rollups))
    counts = expected_class_counts(lake, rollups, sources_csv[1])
    threshold = middle(counts.values())
    cli("spec", "labels", "--min-annotations", str(threshold), "--rollups", str(rollups),
        "--coralnet-sources", str(sources_csv[0]), "--lake", str(lake.uri), "--output", str(include))
    return {"rollups": rollups, "include": include, "sources": sources_csv[0], "threshold": threshold}


def expected_class_counts(lake: Lake, rollups: Path, sources: set[str]) -> Counter:
    """(BA, GF) -> annotations of MERMAID + ``sources`` after the rollup rules, counted in Python."""
    rules = {(r["from_ba_id"], r["from_gf_id"]): (r["to_ba_id"], r["to_gf_id"]) for r in read_csv(rollups)}
    pairs = lake.sql("SELECT site, source_id, benthic_attribute_id, growth_form_id, count(*) AS n "
                     "FROM annotations_mapped GROUP BY ALL").rows()
    counts: Counter = Counter()
    for site, source, ba, gf, n in pairs:
        if site == "mermaid" or source in sources:
            counts[rules.get((ba, gf), (ba, gf))] += n
    return counts


def test_labels_csv_lists_the_classes_with_enough_annotations(lake: Lake, recipe, sources_csv) -> None:
    counts = expected_class_counts(lake, recipe["rollups"], sources_csv[1])
    listed = read_csv(recipe["include"])
    assert {(r["ba_id"], r["gf_id"]): int(r["annotations"]) for r in listed} == {
        k: n for k, n in counts.items() if n >= recipe["threshold"]}
    assert 0 < len(listed) < len(counts)
    names = dict(lake.sql("SELECT id, name FROM benthic_attributes").rows())
    assert all(r["ba_name"] == names[r["ba_id"]] for r in listed)
    order = [(-int(r["annotations"]), r["ba_id"], r["gf_id"]) for r in listed]
    assert order == sorted(order)


def test_include_csv_keeps_those_classes_in_snapshot_create(lake: Lake, recipe, base) -> None:
    listed = read_csv(recipe["include"])
    _sid, manifest, rows = create(lake, "--coralnet-sources", str(recipe["sources"]), "--rollups",
                                  str(recipe["rollups"]), "--include", str(recipe["include"]))
    keys = {(r["ba_id"], r["gf_id"]) for r in listed}
    _sid, _manifest, rolled = create(lake, "--coralnet-sources", str(recipe["sources"]), "--rollups",
                                     str(recipe["rollups"]))
    # the rows of the listed classes, exactly (a class could only vanish if none of its images had features)
    classes = pl.struct("benthic_attribute_id", "growth_form_id")
    expected = rolled.filter(classes.is_in([{"benthic_attribute_id": b, "growth_form_id": g} for b, g in keys]))
    assert sorted(rows["annotation_id"]) == sorted(expected["annotation_id"])
    assert 0 < expected.height < rolled.height
    # the listed counts are exactly what reaches step 5, and what step 5 keeps
    reaching = remaining_after(manifest, "2 sources")
    assert remaining_after(manifest, "5 exclude") == sum(int(r["annotations"]) for r in listed)
    assert reaching == remaining_after(base[1], "2 sources")
    assert rows.height < base[2].height


def test_top_keeps_the_largest_classes(lake: Lake, recipe, tmp_path: Path) -> None:
    include = tmp_path / "top3.csv"
    cli("spec", "labels", "--min-annotations", "1", "--top", "3", "--rollups", str(recipe["rollups"]),
        "--coralnet-sources", str(recipe["sources"]), "--lake", str(lake.uri), "--output", str(include))
    listed = read_csv(include)
    assert len(listed) == 3
    _sid, _manifest, rows = create(lake, "--coralnet-sources", str(recipe["sources"]), "--rollups",
                                   str(recipe["rollups"]), "--include", str(include))
    assert set(rows.select("benthic_attribute_id", "growth_form_id").unique().rows()) == {
        (r["ba_id"], r["gf_id"]) for r in listed}


def test_dataset_options_take_the_same_files(lake: Lake, recipe, tmp_path: Path) -> None:
    """The seed's DatasetOptions with the generated CSVs: the same recipe, so the same snapshot ID, and the
    model is trained on the included classes only."""
    from mermaid_train import DatasetOptions, TrainingOptions, TrainingRunner

    sid, _manifest, _rows = create(lake, "--coralnet-sources", str(recipe["sources"]), "--rollups",
                                   str(recipe["rollups"]), "--include", str(recipe["include"]))
    runner = TrainingRunner(
        dataset_options=DatasetOptions(coralnet_sources_csv=str(recipe["sources"]),
                                       label_rollup_spec_csv=str(recipe["rollups"]),
                                       included_labels_csv=str(recipe["include"]), lake=str(lake.uri)),
        training_options=TrainingOptions(epochs=1),
        runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache",
    )
    runner.run()
    assert runner.result.snapshot_id == sid and runner.result.snapshot_created is False
    listed = {f"{r['ba_id']}::{r['gf_id']}" for r in read_csv(recipe["include"])}
    assert set(runner.result.classes) <= listed and runner.result.classes
