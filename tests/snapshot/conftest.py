"""Fixtures for the snapshot tests: the golden mini-lake (tests/snapshot/golden.py) and case loading."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mermaid_data.lake import Lake

from tests.snapshot.golden import ingest_golden, write_golden_sources


@pytest.fixture(autouse=True)
def _default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot tests assume the documented default of 5% missing features."""
    monkeypatch.delenv("MERMAID_MISSING_FEATURES_ALLOWED", raising=False)


@pytest.fixture(scope="session")
def golden_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden source tree, written once. Read-only: copy it (``golden_copy``) before changing it."""
    return write_golden_sources(tmp_path_factory.mktemp("golden") / "src")


@pytest.fixture(scope="session")
def golden_lake(golden_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The golden sources ingested once. Tests may add snapshots to it but never re-ingest into it."""
    uri = tmp_path_factory.mktemp("golden-lake") / "lake"
    ingest_golden(uri, golden_src)
    return Lake.open(str(uri))


@dataclass
class Golden:
    """A private golden lake: its own copy of the sources (free to change) and its lake."""

    src: Path
    lake: Lake
    root: Path

    def reingest(self, **kwargs):
        return ingest_golden(str(self.lake.uri), self.src, **kwargs)


@pytest.fixture
def golden(golden_src: Path, tmp_path: Path) -> Iterator[Golden]:
    src = tmp_path / "src"
    shutil.copytree(golden_src, src)
    ingest_golden(tmp_path / "lake", src)
    yield Golden(src, Lake.open(str(tmp_path / "lake")), tmp_path)
