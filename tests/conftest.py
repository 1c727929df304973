"""Shared fixtures: the tiny demo sources, a moto S3 server, the demo's API pages over HTTP, ingest helpers."""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mermaid_data.demo import DemoSummary, generate_demo_sources
from mermaid_data.ingest import IngestReport, ingest
from mermaid_data.lake import Lake

from tests.support.api_server import ApiServer
from tests.support.s3 import ProcessS3Server, S3Server

MERMAID_PARQUET = "mermaid/mermaid_confirmed_annotations.parquet"

ApiPayloads = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


# --------------------------------------------------------------------------------------------------
# demo sources
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_sources(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    """The tiny demo (seed 7), generated once per session. Read-only: copy the tree before changing it."""
    return generate_demo_sources(tmp_path_factory.mktemp("demo"), scale="tiny", seed=7)


def run_ingest(
    lake_dir: str | os.PathLike[str],
    src_dir: str | os.PathLike[str],
    *,
    mermaid: str | None | bool = True,
    coralnet: str | None | bool = True,
    api: str | None | bool = True,
    coralnet_sources: list[str] | None = None,
    dry_run: bool = False,
) -> IngestReport:
    """Ingest a demo tree at ``src_dir`` into the lake at ``lake_dir`` (True = the tree's own location)."""
    src = str(src_dir).rstrip("/")
    return ingest(
        Lake.open(str(lake_dir)),
        mermaid_uri=f"{src}/{MERMAID_PARQUET}" if mermaid is True else (mermaid or None),
        coralnet_uri=f"{src}/coralnet" if coralnet is True else (coralnet or None),
        coralnet_sources=coralnet_sources,
        api=f"{src}/api" if api is True else (api or None),
        dry_run=dry_run,
    )


@pytest.fixture(scope="session")
def ingest_demo() -> Callable[..., IngestReport]:
    """``ingest_demo(lake_dir, src_dir, mermaid=..., coralnet=..., api=..., coralnet_sources=..., dry_run=...)``.

    Each of ``mermaid``/``coralnet``/``api`` is True (the demo tree's own location), a URI, or None (skip).
    """
    return run_ingest


# --------------------------------------------------------------------------------------------------
# MERMAID API pages over HTTP
# --------------------------------------------------------------------------------------------------


def _follow(api_dir: Path, first: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    name: str | None = first
    seen: set[str] = set()
    while name is not None:
        assert name not in seen, f"page loop at {name}"
        seen.add(name)
        page = json.loads((api_dir / name).read_text(encoding="utf-8"))
        results.extend(page["results"])
        name = page["next"]
    return results


def load_api_pages(api_dir: Path) -> ApiPayloads:
    """(benthic attribute results, choices, label mapping results) from a demo ``api/`` page directory."""
    api_dir = Path(api_dir)
    bas = _follow(api_dir, "benthicattributes.json")
    mappings = _follow(api_dir, "classification/labelmappings.json")
    for mapping in mappings:
        mapping.setdefault("provider", "CoralNet")
    choices = json.loads((api_dir / "choices.json").read_text(encoding="utf-8"))
    return bas, choices, mappings


@pytest.fixture(scope="session")
def demo_api_payloads(demo_sources: DemoSummary) -> ApiPayloads:
    return load_api_pages(demo_sources.dest / "api")


@pytest.fixture
def api_server(demo_api_payloads: ApiPayloads) -> Iterator[ApiServer]:
    """A real HTTP server serving the demo's API pages (a private copy), 25 results a page at most."""
    with ApiServer(*copy.deepcopy(demo_api_payloads), page_size_cap=25) as server:
        yield server


# --------------------------------------------------------------------------------------------------
# S3 (moto on 127.0.0.1)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """A moto S3 server for the session; its AWS_* variables are set while it runs and restored after."""
    server = ProcessS3Server()
    server.start()
    env = server.env()
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield server
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


@pytest.fixture
def s3_bucket(s3: S3Server) -> Callable[[str], str]:
    """``s3_bucket(prefix)`` creates a new bucket with a unique name and returns the name."""

    def make(prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}".lower()
        s3.create_bucket(name)
        return name

    return make
