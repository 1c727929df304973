"""Property: random specs give the rows a plain-Python reference of the documented semantics gives.

The reference reads ``annotations_mapped`` and ``features`` of the golden lake once, then applies, in
Python: sources -> drop growth forms -> rollups (exact (BA, GF) match, one pass) -> include/exclude (exact
match) -> missing features -> limit (half per site, MERMAID gets the odd one, the other site fills any
shortfall; rows by md5(annotation_id)). Only its inputs come from the lake, never its logic.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mermaid_data.errors import SourceFormatError
from mermaid_data.lake import Lake
from mermaid_data.snapshot import SnapshotSpec

from tests.snapshot.golden import BA_NAMES, G1, G2, ingest_golden

UNKNOWN_BA = "ba000000-0000-4000-8000-000000000099"
PAIRS = [(ba, gf) for ba, gf in itertools.product([*BA_NAMES, UNKNOWN_BA], ["", G1, G2])]
SOURCES = ["11", "12", "13"]


@pytest.fixture(scope="module")
def lake_and_facts(golden_src: Path, tmp_path_factory: pytest.TempPathFactory):
    uri = tmp_path_factory.mktemp("property") / "lake"
    ingest_golden(uri, golden_src)
    lake = Lake.open(str(uri))
    mapped = lake.sql("SELECT site, source_id, image_id, annotation_id, benthic_attribute_id, growth_form_id "
                      "FROM annotations_mapped").rows()
    with_features = set(lake.sql("SELECT DISTINCT site, source_id, image_id FROM features").rows())
    return lake, mapped, with_features, tmp_path_factory.mktemp("property-specs")


def reference(mapped, with_features, *, include_mermaid, sources, drop_gf, rollups, mode, labels, limit):
    rows = []
    for site, source, image, aid, ba, gf in mapped:
        if site == "mermaid" and not include_mermaid:
            continue
        if site == "coralnet" and source not in sources:
            continue
        if drop_gf:
            gf = ""
        ba, gf = rollups.get((ba, gf), (ba, gf))
        if mode == "include" and (ba, gf) not in labels:
            continue
        if mode == "exclude" and (ba, gf) in labels:
            continue
        if (site, source, image) not in with_features:
            continue
        rows.append((site, aid, ba, gf))
    if limit is not None:
        by_site = {s: sorted((r for r in rows if r[0] == s), key=lambda r: (hashlib.md5(r[1].encode()).hexdigest(), r[1]))
                   for s in ("mermaid", "coralnet")}
        m, c = len(by_site["mermaid"]), len(by_site["coralnet"])
        if limit < m + c:
            want_m, want_c = math.ceil(limit / 2), limit // 2
            if m < want_m:
                want_m, want_c = m, limit - m
            elif c < want_c:
                want_m, want_c = limit - c, c
            rows = by_site["mermaid"][:want_m] + by_site["coralnet"][:want_c]
    return {(aid, ba, gf) for _, aid, ba, gf in rows}


def write_csv(path: Path, header: list[str], rows: list[tuple[str, ...]], style: int) -> Path:
    """The same content in one of a few formattings people use."""
    gf_blank = ("", "None", " ")[style % 3]
    lines = [",".join(header)] + [",".join(v if v else gf_blank for v in row) for row in rows]
    text = ("\r\n" if style % 2 else "\n").join(lines) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if style % 4 == 3 else b"") + text.encode())
    return path


pairs = st.sampled_from(PAIRS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    include_mermaid=st.booleans(),
    sources=st.sets(st.sampled_from(SOURCES)),
    drop_gf=st.booleans(),
    rollups=st.dictionaries(pairs, pairs, max_size=8),
    mode=st.sampled_from(["none", "include", "exclude"]),
    labels=st.sets(pairs, max_size=10),
    limit=st.one_of(st.none(), st.integers(1, 22)),
    style=st.integers(0, 7),
)
def test_random_specs_match_the_reference(lake_and_facts, include_mermaid, sources, drop_gf, rollups, mode, labels,
                                          limit, style) -> None:
    lake, mapped, with_features, spec_root = lake_and_facts
    folder = Path(spec_root) / hashlib.md5(repr((sources, rollups, mode, labels, style)).encode()).hexdigest()
    folder.mkdir(exist_ok=True)
    spec = {"include_mermaid": include_mermaid, "drop_growthforms": drop_gf, "annotation_limit": limit,
            "missing_features_allowed": 100}
    if sources:
        spec["coralnet_sources_csv"] = write_csv(folder / "sources.csv", ["id"], [(s,) for s in sorted(sources)], style)
    if rollups:
        spec["label_rollup_spec_csv"] = write_csv(
            folder / "rollups.csv", ["from_ba_id", "from_gf_id", "to_ba_id", "to_gf_id"],
            [(*src, *dst) for src, dst in sorted(rollups.items())], style)
    if mode != "none":
        spec[f"{mode}d_labels_csv"] = write_csv(folder / f"{mode}.csv", ["ba_id", "gf_id"], sorted(labels), style)
        if not labels:  # a header-only include/exclude list is refused, never published (issue 10)
            with pytest.raises(SourceFormatError, match="a header but no rows"):
                lake.create_snapshot(SnapshotSpec(**spec))
            return
    result = lake.create_snapshot(SnapshotSpec(**spec))
    rows = pl.read_parquet(Path(lake.uri.key) / "snapshots" / result.snapshot_id / "rows.parquet")
    got = set(rows.select("annotation_id", "benthic_attribute_id", "growth_form_id").rows())
    want = reference(mapped, with_features, include_mermaid=include_mermaid, sources=sources, drop_gf=drop_gf,
                     rollups=rollups, mode=mode, labels=labels, limit=limit)
    assert got == want
    assert rows.height == len(want) == result.manifest["row_count"]
