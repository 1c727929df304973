"""The offline demo-source generator: layout, real-format quirks, features, API pages, determinism."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mermaid_data.demo import SCALES, DemoSummary, generate_demo_sources, write_api_pages
from mermaid_data.demo.features import FEATURE_DIM, read_feature_file
from mermaid_data.demo.generate import MANIFEST_FILE, MERMAID_FILE
from mermaid_data.errors import ConfigError

MERMAID_COLUMNS = [
    "id",
    "image_id",
    "point_id",
    "row",
    "col",
    "benthic_attribute_id",
    "benthic_attribute_name",
    "growth_form_id",
    "growth_form_name",
    "updated_on",
    "region_id",
    "region_name",
]
BASE_HEADER = ["Image ID", "Row", "Column", "Label ID"]


# --------------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary, float]:
    dest = tmp_path_factory.mktemp("demo") / "tiny"
    start = time.perf_counter()
    summary = generate_demo_sources(dest, scale="tiny", seed=0)
    return dest, summary, time.perf_counter() - start


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _read_mermaid(dest: Path) -> pl.DataFrame:
    return pl.read_parquet(dest / "mermaid" / MERMAID_FILE)


def _coralnet_sources(dest: Path) -> dict[int, tuple[list[str], pl.DataFrame]]:
    out = {}
    for source_dir in sorted((dest / "coralnet").iterdir()):
        path = source_dir / "annotations.csv"
        with path.open(newline="") as handle:
            header = next(csv.reader(handle))
        out[int(source_dir.name[1:])] = (header, pl.read_csv(path))
    return out


def _follow_pages(api_dir: Path, first: str) -> tuple[list[str], list[dict]]:
    names, results = [], []
    name: str | None = first
    previous = None
    while name is not None:
        assert name not in names, "pagination loops"
        page = json.loads((api_dir / name).read_text(encoding="utf-8"))
        assert set(page) >= {"count", "next", "previous", "results"}
        assert page["previous"] == previous
        names.append(name)
        results.extend(page["results"])
        previous, name = name, page["next"]
        count = page["count"]
    assert count == len(results)
    return names, results


def _label_mappings(dest: Path) -> list[dict]:
    return _follow_pages(dest / "api", "classification/labelmappings.json")[1]


# --------------------------------------------------------------------------------------------------
# API, scales, speed, determinism
# --------------------------------------------------------------------------------------------------


def test_scales_and_summary(tiny: tuple[Path, DemoSummary, float]) -> None:
    dest, summary, elapsed = tiny
    assert SCALES["tiny"] == 3_000 and SCALES["small"] == 20_000
    assert SCALES["medium"] == 1_000_000 and SCALES["large"] == 22_000_000
    assert summary.dest == dest
    assert abs(summary.total_rows - SCALES["tiny"]) <= 50
    assert summary.mermaid_rows == 25 * summary.mermaid_images
    assert 0.2 <= summary.mermaid_rows / summary.total_rows <= 0.3
    assert summary.coralnet_sources >= 3
    assert (
        summary.feature_files_written
        == summary.mermaid_images + summary.coralnet_images - summary.feature_files_missing
    )
    assert elapsed < 4.0, f"tiny demo with features took {elapsed:.2f} s"
    manifest = json.loads((dest / MANIFEST_FILE).read_text())
    assert manifest["complete"] is True and manifest["mermaid_rows"] == summary.mermaid_rows
    with pytest.raises(AttributeError):
        summary.seed = 1  # type: ignore[misc]


def test_same_seed_same_bytes_other_seed_other_data(
    tmp_path: Path, tiny: tuple[Path, DemoSummary, float]
) -> None:
    first, summary, _ = tiny
    again = generate_demo_sources(tmp_path / "again", scale="tiny", seed=0)
    digests_first = _tree_digest(first)
    digests_again = _tree_digest(tmp_path / "again")
    assert digests_first == digests_again
    kinds = {
        "parquet": f"mermaid/{MERMAID_FILE}",
        "csv": next(k for k in digests_first if k.endswith("annotations.csv")),
        "api page": "api/benthicattributes.page2.json",
        "mermaid feature": next(k for k in digests_first if k.endswith("_featurevector")),
        "coralnet feature": next(k for k in digests_first if k.endswith(".featurevector")),
    }
    for path in kinds.values():
        assert (first / path).read_bytes() == (tmp_path / "again" / path).read_bytes()
    assert {k: v for k, v in again.to_dict().items() if k != "dest"} == {
        k: v for k, v in summary.to_dict().items() if k != "dest"
    }

    generate_demo_sources(tmp_path / "other", scale="tiny", seed=1, features=False)
    assert (tmp_path / "other" / "mermaid" / MERMAID_FILE).read_bytes() != (
        first / "mermaid" / MERMAID_FILE
    ).read_bytes()
    # the taxonomy (API pages) does not depend on the seed
    assert _tree_digest(tmp_path / "other" / "api") == _tree_digest(first / "api")
    # annotations do not depend on whether features are written
    assert (tmp_path / "again" / "mermaid" / MERMAID_FILE).read_bytes() == (
        first / "mermaid" / MERMAID_FILE
    ).read_bytes()
    nofeat = generate_demo_sources(tmp_path / "nofeat", scale="tiny", seed=0, features=False)
    assert nofeat.feature_files_written == 0 and nofeat.feature_files_missing == 0
    assert _tree_digest(tmp_path / "nofeat" / "coralnet") == {
        k[len("coralnet/") :]: v
        for k, v in digests_first.items()
        if k.startswith("coralnet/") and "/features/" not in k
    }


def test_annotations_override_and_progress(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    summary = generate_demo_sources(
        tmp_path / "d", scale="large", annotations=10_000, features=False, progress=lambda *a: calls.append(a)
    )
    assert summary.target_annotations == 10_000
    assert abs(summary.total_rows - 10_000) <= 60
    assert not any((tmp_path / "d").rglob("*featurevector*"))
    stages = {stage for stage, _, _ in calls}
    assert stages == {"mermaid", "coralnet", "api"}
    for stage in stages:
        last = [c for c in calls if c[0] == stage][-1]
        assert last[1] == last[2]


def test_bad_arguments_and_foreign_destination(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown demo scale"):
        generate_demo_sources(tmp_path / "a", scale="huge")
    with pytest.raises(ConfigError, match="at least"):
        generate_demo_sources(tmp_path / "a", annotations=10)
    with pytest.raises(ConfigError, match="seed"):
        generate_demo_sources(tmp_path / "a", seed=-1)
    foreign = tmp_path / "foreign"
    (foreign / "mermaid").mkdir(parents=True)
    (foreign / "mermaid" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not written by the demo generator"):
        generate_demo_sources(foreign, features=False)
    assert (foreign / "mermaid" / "keep.txt").read_text() == "mine"
    # a demo directory is regenerated in place (stale files from an earlier run disappear)
    ours = tmp_path / "ours"
    generate_demo_sources(ours, seed=0, features=False)
    (ours / "coralnet" / "stale.csv").write_text("x")
    generate_demo_sources(ours, seed=0, features=False)
    assert not (ours / "coralnet" / "stale.csv").exists()


# --------------------------------------------------------------------------------------------------
# MERMAID parquet
# --------------------------------------------------------------------------------------------------


def test_mermaid_parquet_shape(tiny: tuple[Path, DemoSummary, float]) -> None:
    dest, summary, _ = tiny
    parquet = pq.ParquetFile(dest / "mermaid" / MERMAID_FILE)
    schema = parquet.schema_arrow
    assert schema.names == MERMAID_COLUMNS
    assert schema.field("row").type == pa.int64() and schema.field("col").type == pa.int64()
    assert schema.field("updated_on").type == pa.timestamp("us", tz="UTC")
    for name in MERMAID_COLUMNS:
        if name not in ("row", "col", "updated_on"):
            assert schema.field(name).type == pa.string(), name
    assert parquet.metadata.num_row_groups > 1  # written in chunks
    frame = _read_mermaid(dest)
    assert frame.height == summary.mermaid_rows
    assert frame.null_count().sum_horizontal().item() == 0
    uuid_re = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    for name in ("id", "image_id", "point_id", "benthic_attribute_id", "region_id"):
        assert frame[name].str.contains(uuid_re).all(), name
    assert frame["id"].n_unique() == frame.height and frame["point_id"].n_unique() == frame.height
    # ordered by (image_id, row, col)
    assert frame.select("image_id", "row", "col").equals(
        frame.select("image_id", "row", "col").sort("image_id", "row", "col")
    )


def test_mermaid_growth_forms_and_taxonomy(tiny: tuple[Path, DemoSummary, float]) -> None:
    dest, _, _ = tiny
    frame = _read_mermaid(dest)
    no_gf_id = frame["growth_form_id"] == "None"
    no_gf_name = frame["growth_form_name"] == "None"
    assert (no_gf_id == no_gf_name).all()
    share = no_gf_id.mean()
    assert 0.55 <= share <= 0.85, share  # a growth form on ~30% of rows
    _, bas = _follow_pages(dest / "api", "benthicattributes.json")
    ba_names = {ba["id"]: ba["name"] for ba in bas}
    pairs = frame.select("benthic_attribute_id", "benthic_attribute_name").unique().rows()
    assert all(ba_names[ba_id] == name for ba_id, name in pairs)
    growthforms = next(
        c for c in json.loads((dest / "api" / "choices.json").read_text()) if c["name"] == "growthforms"
    )
    gf_names = {gf["id"]: gf["name"] for gf in growthforms["data"]}
    pairs = frame.filter(~no_gf_id).select("growth_form_id", "growth_form_name").unique().rows()
    assert pairs and all(gf_names[gf_id] == name for gf_id, name in pairs)


def test_mermaid_25_points_on_5x5_grid(tiny: tuple[Path, DemoSummary, float]) -> None:
    dest, summary, _ = tiny
    frame = _read_mermaid(dest)
    per_image = frame.group_by("image_id").agg(
        pl.len().alias("n"),
        pl.col("row").n_unique().alias("rows"),
        pl.col("col").n_unique().alias("cols"),
        pl.struct("row", "col").n_unique().alias("points"),
        pl.col("updated_on").n_unique().alias("stamps"),
    )
    assert per_image.height == summary.mermaid_images
    assert (per_image["n"] == 25).all() and (per_image["points"] == 25).all()
    assert (per_image["rows"] == 5).all() and (per_image["cols"] == 5).all()
    assert (per_image["stamps"] == 1).all()
    one = frame.filter(pl.col("image_id") == frame["image_id"][0])
    rows = sorted(set(one["row"].to_list()))
    steps = np.diff(rows)
    assert steps.max() - steps.min() <= 1  # evenly spaced


# --------------------------------------------------------------------------------------------------
# CoralNet CSVs
# --------------------------------------------------------------------------------------------------


def test_coralnet_layout_and_columns(tiny: tuple[Path, DemoSummary, float]) -> None:
    dest, summary, _ = tiny
    sources = _coralnet_sources(dest)
    assert len(sources) == summary.coralnet_sources
    assert all(10 <= sid for sid in sources)
    headers = [header for header, _ in sources.values()]
    assert any(header == BASE_HEADER for header in headers)
    extended = [header for header in headers if header != BASE_HEADER]
    assert extended, "some sources carry extra columns"
    for header in extended:
        assert set(BASE_HEADER) < set(header)
        assert [h for h in header if h in BASE_HEADER] != BASE_HEADER  # another column order
    raw_header = (dest / "coralnet" / f"s{min(sources)}" / "annotations.csv").read_text().splitlines()[0]
    assert '"' not in raw_header
    image_ids: list[int] = []
    total = 0
    for _, frame in sources.values():
        for name in BASE_HEADER:
            assert frame[name].dtype == pl.Int64, name
        assert (frame["Image ID"] > 0).all()
        image_ids.extend(frame["Image ID"].unique().to_list())
        total += frame.height
    assert len(image_ids) == len(set(image_ids)) == summary.coralnet_images
    assert total == summary.coralnet_rows


def test_coralnet_points_per_image_constant_within_a_source(tiny: tuple[Path, DemoSummary, float]) -> None:
    dest, _, _ = tiny
    per_source = []
    for _, frame in _coralnet_sources(dest).values():
        counts = frame.group_by("Image ID").len()["len"].unique().to_list()
        assert len(counts) == 1
        per_source.append(counts[0])
    assert len(set(per_source)) > 1, "points per image should vary between sources"
    assert set(per_source) <= {10, 25, 30, 50}


def test_coralnet_duplicate_points(tiny: tuple[Path, DemoSummary, float]) -> None:
    dest, summary, _ = tiny
    same = different = 0
    duplicates = 0
    for _, frame in _coralnet_sources(dest).values():
        groups = frame.group_by("Image ID", "Row", "Column").agg(
            pl.len().alias("n"), pl.col("Label ID").n_unique().alias("labels")
        )
        dup = groups.filter(pl.col("n") > 1)
        duplicates += int((dup["n"] - 1).sum())
        same += dup.filter(pl.col("labels") == 1).height
        different += dup.filter(pl.col("labels") > 1).height
    assert duplicates == summary.duplicate_points >= 2
    assert same >= 1 and different >= 1


def test_coralnet_labels_long_tail_and_unmapped(
    tmp_path: Path, tiny: tuple[Path, DemoSummary, float]
) -> None:
    dest, summary, _ = tiny
    mapped = {int(m["provider_id"]) for m in _label_mappings(dest)}
    labels = pl.concat([frame.select("Label ID") for _, frame in _coralnet_sources(dest).values()])[
        "Label ID"
    ]
    unmapped = int((~labels.is_in(list(mapped))).sum())
    assert unmapped == summary.unmapped_label_rows
    assert 0.01 <= unmapped / len(labels) <= 0.06

    # at a larger size (no features: fast), the long tail is visible
    big = generate_demo_sources(tmp_path / "big", annotations=60_000, features=False)
    labels = pl.concat(
        [frame.select("Label ID") for _, frame in _coralnet_sources(tmp_path / "big").values()]
    )["Label ID"]
    counts = Counter(labels.to_list())
    top_share = counts.most_common(1)[0][1] / len(labels)
    assert 0.18 <= top_share <= 0.40, top_share
    assert len(counts) > 60
    assert 0.02 <= big.unmapped_label_rows / big.coralnet_rows <= 0.04


# --------------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------------


def _feature_pairs(dest: Path) -> list[tuple[Path, np.ndarray, np.ndarray, np.ndarray]]:
    """(feature path, rows, cols, labels) for every image of both sites (existing file or not)."""
    pairs = []
    frame = _read_mermaid(dest)
    for (image_id,), group in frame.group_by(["image_id"], maintain_order=True):
        pairs.append(
            (
                dest / "mermaid" / f"{image_id}_featurevector",
                group["row"].to_numpy(),
                group["col"].to_numpy(),
                (group["benthic_attribute_name"] + "/" + group["growth_form_name"]).to_numpy(),
            )
        )
    for sid, (_, source) in _coralnet_sources(dest).items():
        for (image_id,), group in source.group_by(["Image ID"], maintain_order=True):
            pairs.append(
                (
                    dest / "coralnet" / f"s{sid}" / "features" / f"i{image_id}.featurevector",
                    group["Row"].to_numpy(),
                    group["Column"].to_numpy(),
                    group["Label ID"].to_numpy().astype(str),
                )
            )
    return pairs


def test_feature_files_match_annotations_and_some_are_missing(tiny: tuple[Path, DemoSummary, float]) -> None:
    dest, summary, _ = tiny
    pairs = _feature_pairs(dest)
    present = [p for p in pairs if p[0].is_file()]
    missing = [p for p in pairs if not p[0].is_file()]
    assert len(present) == summary.feature_files_written
    assert len(missing) == summary.feature_files_missing >= 1
    assert any(p[0].parent.name == "mermaid" for p in present)
    assert len(missing) / len(pairs) < 0.05
    for path, rows, cols, _ in present:
        f_rows, f_cols, feat = read_feature_file(path)
        assert f_rows.dtype == np.uint16 and feat.dtype == np.float64
        assert feat.shape == (len(rows), FEATURE_DIM)
        np.testing.assert_array_equal(f_rows, rows)  # same order, duplicates included
        np.testing.assert_array_equal(f_cols, cols)
    sizes = [path.stat().st_size for path, *_ in present]
    assert max(sizes) < 400_000  # ~1.5 bytes per value after deflate


def test_feature_files_load_with_pyspacer(tmp_path: Path, tiny: tuple[Path, DemoSummary, float]) -> None:
    from spacer import data_classes
    dest, _, _ = tiny
    pairs = [p for p in _feature_pairs(dest) if p[0].is_file()]
    chosen = [next(p for p in pairs if p[0].parent.name == "mermaid")]
    chosen += [p for p in pairs if p[0].parent.name == "features"][:3]
    # an image with a duplicate point, if its features exist
    chosen += [p for p in pairs if len(set(zip(p[1], p[2]))) < len(p[1])][:1]
    for path, rows, cols, _ in chosen:
        loaded = data_classes.ImageFeatures.load(data_classes.DataLocation("filesystem", str(path)))
        assert loaded.valid_rowcol
        assert loaded.npoints == len(rows) and loaded.feature_dim == FEATURE_DIM
        assert [(pf.row, pf.col) for pf in loaded.point_features] == list(zip(rows.tolist(), cols.tolist()))
        assert len(loaded.point_features[0].data) == FEATURE_DIM
        for row, col in zip(rows.tolist(), cols.tolist()):
            assert len(loaded[(row, col)]) == FEATURE_DIM

    # same members, dtypes and shapes as a file pyspacer itself stores
    path, rows, cols, _ = chosen[0]
    ours = np.load(path)
    theirs_path = tmp_path / "theirs.featurevector"
    points = [
        data_classes.PointFeatures(row=int(r), col=int(c), data=list(ours["feat"][i]))
        for i, (r, c) in enumerate(zip(rows, cols))
    ]
    data_classes.ImageFeatures(
        point_features=points, valid_rowcol=True, feature_dim=FEATURE_DIM, npoints=len(points)
    ).store(data_classes.DataLocation("filesystem", str(theirs_path)))
    theirs = np.load(theirs_path)
    assert sorted(ours.files) == sorted(theirs.files)
    for name in theirs.files:
        assert ours[name].dtype == theirs[name].dtype, name
        np.testing.assert_array_equal(ours[name], theirs[name])


def test_features_depend_on_the_class(tiny: tuple[Path, DemoSummary, float]) -> None:
    """Bug pinned: features that do not depend on the (BA, GF) class a CoralNet label maps to."""
    dest, _, _ = tiny
    classes = {m["provider_id"]: (m["benthic_attribute_id"], m["growth_form_id"]) for m in _label_mappings(dest)}
    by_label: dict[tuple[str, str | None], list[np.ndarray]] = {}
    for path, _, _, labels in _feature_pairs(dest):
        if path.parent.name != "features" or not path.is_file():
            continue
        feat = read_feature_file(path)[2]
        for label, row in zip(labels, feat):
            if str(label) in classes:  # several labels map to one class (82 and 1348 are both Turf algae)
                by_label.setdefault(classes[str(label)], []).append(row)
    top = sorted(by_label, key=lambda k: -len(by_label[k]))[:3]
    means = [np.mean(by_label[k], axis=0) for k in top]
    sizes = [len(by_label[k]) for k in top]
    for i in range(3):
        for j in range(i + 1, 3):
            distance = np.linalg.norm(means[i] - means[j])
            noise_only = np.sqrt(FEATURE_DIM * (1 / sizes[i] + 1 / sizes[j]))  # unit noise per dimension
            assert distance > 1.5 * noise_only, (top[i], top[j], distance, noise_only)
    # ... but the classes overlap: single points are not trivially separable
    within = np.linalg.norm(by_label[top[0]][0] - means[0])
    assert within > np.linalg.norm(means[0] - means[1])


# --------------------------------------------------------------------------------------------------
# API pages
# --------------------------------------------------------------------------------------------------


def test_api_pages_paginate_and_cover_everything(tiny: tuple[Path, DemoSummary, float]) -> None:
    dest, summary, _ = tiny
    api = dest / "api"
    names, bas = _follow_pages(api, "benthicattributes.json")
    assert len(names) >= 2 and names[1] == "benthicattributes.page2.json"
    assert len(bas) == summary.benthic_attributes and len({b["id"] for b in bas}) == len(bas)
    assert all(len(json.loads((api / n).read_text())["results"]) <= 100 for n in names)
    roots = {b["name"] for b in bas if b["parent"] is None}
    assert roots == {
        "Hard coral", "Soft coral", "Macroalgae", "Turf algae", "Sand", "Rubble", "Bare substrate",
        "Crustose coralline algae", "Cyanobacteria", "Seagrass", "Other invertebrates", "Other",
    }  # fmt: skip
    ids = {b["id"] for b in bas}
    assert all(b["parent"] is None or b["parent"] in ids for b in bas)
    lm_names, mappings = _follow_pages(api, "classification/labelmappings.json")
    assert len(lm_names) >= 2 and lm_names[1] == "classification/labelmappings.page2.json"
    assert len(mappings) == summary.label_mappings
    assert all(m["provider"] == "CoralNet" and m["provider_id"].isdigit() for m in mappings)
    assert all((m["growth_form_id"] is None) == (m["growth_form_name"] is None) for m in mappings)
    assert any(m["growth_form_id"] is None for m in mappings) and any(m["growth_form_id"] for m in mappings)
    assert all(m["benthic_attribute_id"] in ids for m in mappings)
    choices = json.loads((api / "choices.json").read_text())
    assert isinstance(choices, list) and len(choices) >= 3
    growthforms = next(c for c in choices if c["name"] == "growthforms")["data"]
    assert sorted(g["name"] for g in growthforms) == [
        "Arborescent", "Branching", "Columnar", "Corymbose", "Digitate", "Encrusting", "Foliose",
        "Massive", "Mushroom coral", "Plates or tables", "Submassive",
    ]  # fmt: skip


def test_exactly_one_provider_id_is_mapped_twice(tiny: tuple[Path, DemoSummary, float]) -> None:
    dest, _, _ = tiny
    mappings = _label_mappings(dest)
    counts = Counter(m["provider_id"] for m in mappings)
    doubled = [pid for pid, n in counts.items() if n > 1]
    assert len(doubled) == 1 and counts[doubled[0]] == 2
    pairs = {
        (m["benthic_attribute_id"], m["growth_form_id"]) for m in mappings if m["provider_id"] == doubled[0]
    }
    assert len(pairs) == 2
    assert len({m["id"] for m in mappings}) == len(mappings)


def test_demo_is_built_on_the_bundled_real_taxonomy(
    tmp_path: Path, tiny: tuple[Path, DemoSummary, float]
) -> None:
    """Bug pinned: a synthetic demo taxonomy on which the seed document's real ids change nothing."""
    from mermaid_data.taxonomy import load_bundled_taxonomy

    dest, _, _ = tiny
    bundle = load_bundled_taxonomy()
    _, bas = _follow_pages(dest / "api", "benthicattributes.json")
    assert {(b["id"], b["name"], b["parent"]) for b in bas} == set(
        zip(*(bundle.taxonomy.benthic_attributes.column(c).to_pylist() for c in ("id", "name", "parent_id")))
    )
    mappings = _label_mappings(dest)
    bundled = {m["id"] for m in bundle.api_payloads()[2]}
    assert len(mappings) == len(bundled) + 1 and bundled < {m["id"] for m in mappings}  # + the doubled id
    # MERMAID rows use real BA ids; the seed document's Acropora::Branching and Porites::Massive occur
    frame = _read_mermaid(dest)
    assert set(frame["benthic_attribute_id"]) <= {b["id"] for b in bas}
    pairs = set(frame.select("benthic_attribute_name", "growth_form_name").unique().rows())
    assert {("Acropora", "Branching"), ("Porites", "Massive")} <= pairs

    # at a larger size (no features: fast): CoralNet labels follow the real public counts, MERMAID rows
    # have MERMAID's emphasis on hard coral
    generate_demo_sources(tmp_path / "big", annotations=60_000, features=False)
    labels = pl.concat([f.select("Label ID") for _, f in _coralnet_sources(tmp_path / "big").values()])["Label ID"]
    top = [label for label, _ in Counter(labels.to_list()).most_common(2)]
    assert top[0] == 82  # "Turf algae": 28% of public CoralNet annotations
    real_top = sorted(bundle.label_counts, key=lambda k: -bundle.label_counts[k])[:6]
    assert str(top[1]) in real_top
    big = _read_mermaid(tmp_path / "big")
    parents = {b["id"]: b["parent"] for b in bas}
    names = {b["id"]: b["name"] for b in bas}

    def root(ba_id: str) -> str:
        while parents[ba_id] is not None:
            ba_id = parents[ba_id]
        return names[ba_id]

    roots = Counter(root(ba) for ba in big["benthic_attribute_id"].to_list())
    assert 0.33 <= roots["Hard coral"] / big.height <= 0.41, roots
    hard = big.filter(pl.col("benthic_attribute_id").map_elements(root, return_dtype=pl.String) == "Hard coral")
    assert 0.7 <= (hard["growth_form_name"] != "None").mean() <= 0.86


def test_api_client_reads_the_demo_pages(tiny: tuple[Path, DemoSummary, float]) -> None:
    from mermaid_data.sources import api as api_module
    dest, summary, _ = tiny
    taxonomy = api_module.fetch_taxonomy(str(dest / "api"))
    assert taxonomy.benthic_attributes.num_rows == summary.benthic_attributes
    assert taxonomy.growth_forms.num_rows == 11
    assert taxonomy.label_mappings.num_rows == summary.label_mappings


def test_write_api_pages_from_the_bundled_taxonomy(tmp_path: Path) -> None:
    """Bug pinned: the real taxonomy (738 BAs, 711 mappings) not surviving a round trip through pages."""
    from mermaid_data.taxonomy import load_bundled_taxonomy

    bas, gfs, mappings = load_bundled_taxonomy().api_payloads()
    written = write_api_pages(tmp_path / "api", bas, gfs, mappings, page_size=250)
    assert tmp_path / "api" / "choices.json" in written
    names, results = _follow_pages(tmp_path / "api", "benthicattributes.json")
    assert len(names) == 3 and len(results) == len(bas) == 738
    names, results = _follow_pages(tmp_path / "api", "classification/labelmappings.json")
    assert names[-1] == "classification/labelmappings.page3.json" and len(results) == len(mappings)
    from mermaid_data.sources import api as api_module
    taxonomy = api_module.fetch_taxonomy(str(tmp_path / "api"))
    assert taxonomy.benthic_attributes.num_rows == 738
    assert taxonomy.growth_forms.num_rows == 11
    assert taxonomy.label_mappings.num_rows == len(mappings) == 711
    assert taxonomy.fingerprint() == load_bundled_taxonomy().taxonomy.fingerprint()
    with pytest.raises(ConfigError):
        write_api_pages(tmp_path / "bad", bas, gfs, mappings, page_size=0)


def test_write_api_pages_empty_listing(tmp_path: Path) -> None:
    write_api_pages(tmp_path, [], [], [])
    page = json.loads((tmp_path / "benthicattributes.json").read_text())
    assert page == {"count": 0, "next": None, "previous": None, "results": []}
