"""Fixtures for the spec tests: the spec mini-lake (tests/spec/tree.py), ingested once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from mermaid_data.lake import Lake

from tests.spec.tree import ingest_tree, write_tree_sources


@pytest.fixture(scope="session")
def tree_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mini-lake's source tree, written once. Read-only: copy it before changing it."""
    return write_tree_sources(tmp_path_factory.mktemp("tree") / "src")


@pytest.fixture(scope="session")
def tree_lake(tree_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The mini-lake ingested once. Tests may add snapshots to it but never re-ingest into it."""
    uri = tmp_path_factory.mktemp("tree-lake") / "lake"
    ingest_tree(uri, tree_src)
    return Lake.open(str(uri))
