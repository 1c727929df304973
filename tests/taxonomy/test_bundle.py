"""The bundled MERMAID taxonomy and `mermaid-data taxonomy snapshot`, which rewrites it from API pages.

The bundle is served as paginated MERMAID API pages by a real local HTTP server (and written as a page
folder); the command must write the bundle's files back byte for byte, so refreshing it is one command.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from mermaid_data.cli import app
from mermaid_data.demo import write_api_pages
from mermaid_data.errors import SourceFormatError
from mermaid_data.lake import Lake
from mermaid_data.taxonomy import BUNDLE_DIR, BUNDLE_FILES, load_bundled_taxonomy, snapshot_taxonomy
from typer.testing import CliRunner

from tests.support.api_server import ApiServer
from tests.support.reference import load_reference_payloads

WIDE = {"COLUMNS": "250"}


@pytest.fixture(scope="module")
def bundle_server() -> Iterator[ApiServer]:
    with ApiServer(*load_reference_payloads(), page_size_cap=200) as server:
        yield server


def _same_files(dest: Path) -> None:
    for name in BUNDLE_FILES:
        assert (dest / name).read_bytes() == (BUNDLE_DIR / name).read_bytes(), name


def test_bundle_holds_the_public_taxonomy() -> None:
    """Bug pinned: a bundle missing rows (the issue: 738 BAs, 11 GFs, 711 mappings, a count per label)."""
    bundle = load_bundled_taxonomy()
    tax = bundle.taxonomy
    assert tax.benthic_attributes.num_rows == 738
    assert tax.growth_forms.num_rows == 11
    assert tax.label_mappings.num_rows == 711
    assert set(bundle.label_counts) == set(tax.label_mappings.column("provider_id").to_pylist())
    assert tax.benthic_attributes.column("parent_id").null_count == 12
    assert (BUNDLE_DIR / "README.md").is_file()


def test_snapshot_from_the_api_rewrites_the_bundle_byte_for_byte(
    bundle_server: ApiServer, tmp_path: Path
) -> None:
    """Bug pinned: a refresh that reorders, reformats or loses rows (738 BAs over several HTTP pages)."""
    result = CliRunner().invoke(
        app, ["taxonomy", "snapshot", str(tmp_path / "bundle"), "--api", bundle_server.base_url], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert "738 benthic attributes, 11 growth forms, 711 label mappings" in result.output
    assert len(bundle_server.requests_to("benthicattributes/")) >= 4  # 738 rows at 200 a page
    _same_files(tmp_path / "bundle")


def test_snapshot_from_a_page_folder_with_label_counts(tmp_path: Path) -> None:
    """Bug pinned: counts read from the API repository's initial_label_pop.csv layout (NA, extra columns)."""
    bas, choices, mappings = load_reference_payloads()
    gfs = next(c["data"] for c in choices if c["name"] == "growthforms")
    write_api_pages(tmp_path / "pages", bas, gfs, mappings, page_size=300)
    counts = load_bundled_taxonomy().label_counts
    pop = tmp_path / "initial_label_pop.csv"
    with pop.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(["CoralNetID", "CoralNetName", "Public sources using", "Public annotation count"])
        for label, count in counts.items():
            writer.writerow([label, "name, with a comma", "3", count])
    result = snapshot_taxonomy(str(tmp_path / "pages"), tmp_path / "bundle", label_counts_csv=pop)
    assert (result.benthic_attributes, result.label_mappings, result.labels_without_count) == (738, 711, 0)
    _same_files(tmp_path / "bundle")


def test_a_new_label_without_a_count_is_written_as_zero_and_reported(tmp_path: Path) -> None:
    """Bug pinned: a label the API gained since the counts were taken silently vanishing from the bundle."""
    bas, choices, mappings = load_reference_payloads()
    gfs = next(c["data"] for c in choices if c["name"] == "growthforms")
    new = dict(mappings[0], id="0d9c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d", provider_id="999999", provider_label="New")
    write_api_pages(tmp_path / "pages", bas, gfs, [*mappings, new])
    result = snapshot_taxonomy(str(tmp_path / "pages"), tmp_path / "bundle")
    assert (result.label_mappings, result.coralnet_labels, result.labels_without_count) == (712, 712, 1)
    rows = list(csv.DictReader((tmp_path / "bundle" / "coralnet_label_counts.csv").open()))
    assert rows[-1] == {"provider_id": "999999", "public_annotation_count": "0"}


def test_bad_label_counts_csv_is_one_line_and_writes_nothing(bundle_server: ApiServer, tmp_path: Path) -> None:
    """Bug pinned: a bad counts file failing after half the bundle was overwritten."""
    bad = tmp_path / "counts.csv"
    bad.write_text("CoralNetID,Public annotation count\n82,5496896\n84,many\n", encoding="utf-8")
    dest = tmp_path / "bundle"
    with pytest.raises(SourceFormatError) as info:
        snapshot_taxonomy(bundle_server.base_url, dest, label_counts_csv=bad)
    assert f"{bad}, row 3" in str(info.value) and "'many'" in str(info.value)
    assert not dest.exists()
    result = CliRunner().invoke(
        app, ["taxonomy", "snapshot", str(dest), "--api", bundle_server.base_url, "--label-counts", str(bad)],
        env=WIDE,
    )
    assert result.exit_code == 2
    assert "row 3" in result.output and "Traceback" not in result.output
    assert not dest.exists()


def test_ingest_api_bundled_loads_the_bundle(tmp_path: Path, demo_sources, ingest_demo) -> None:
    """Bug pinned: offline ingest needing a page folder although the package ships the taxonomy."""
    src = tmp_path / "src"
    shutil.copytree(demo_sources.dest, src)
    report = ingest_demo(tmp_path / "lake", src, api="bundled")
    assert report.taxonomy_action == "new"
    lake = Lake.open(str(tmp_path / "lake"))
    assert lake.sql("SELECT count(*) FROM benthic_attributes").item() == 738
    assert lake.sql("SELECT count(*) FROM label_mappings").item() == 711
