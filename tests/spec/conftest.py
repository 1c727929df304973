"""Fixtures for the spec tests: the spec mini-lake (tests/spec/tree.py), written and ingested once per session."""

from __future__ import annotations

import pytest
from mermaid_data.lake import Lake

from tests.spec.tree import ingest_tree, write_tree_sources


@pytest.fixture(scope="session")
def tree_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The mini-lake. Tests may add snapshots to it but never re-ingest into it (copy it to change it)."""
    root = tmp_path_factory.mktemp("tree")
    ingest_tree(root / "lake", write_tree_sources(root / "src"))
    return Lake.open(str(root / "lake"))
