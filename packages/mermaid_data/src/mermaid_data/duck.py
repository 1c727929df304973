"""DuckDB connections: httpfs (and aws) loaded from their wheels (no downloads), S3 from ``s3config``."""

from __future__ import annotations

import importlib
from functools import lru_cache
from pathlib import Path

import duckdb

from mermaid_data.s3config import s3_config
from mermaid_data.settings import get_settings


@lru_cache(maxsize=2)
def _extension_path(name: str) -> str:
    """The extension file inside its ``duckdb-extension-<name>`` wheel (DuckDB cannot download here)."""
    module = importlib.import_module(f"duckdb_extension_{name}")
    found = sorted(Path(module.__path__[0]).rglob(f"{name}.duckdb_extension"))
    if not found:  # pragma: no cover - packaging error
        raise RuntimeError(f"duckdb-extension-{name} is installed without its extension file")
    return str(found[0])


def connect(*, s3: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the project's memory limit and, if asked, S3 access."""
    settings = get_settings()
    con = duckdb.connect(config={"memory_limit": settings.duckdb_memory_limit})
    con.execute("SET preserve_insertion_order = false")
    if s3:
        configure_s3(con)
    return con


def configure_s3(con: duckdb.DuckDBPyConnection) -> None:
    """Load httpfs (and aws for the credential chain) from their wheels; create the S3 secret of the one
    S3 configuration (``mermaid_data.s3config``)."""
    config = s3_config()
    con.execute(f"LOAD '{_extension_path('httpfs')}'")
    if config.duckdb_chain:
        con.execute(f"LOAD '{_extension_path('aws')}'")
        try:
            con.execute(config.duckdb_secret_sql())
        except duckdb.Error:
            # DuckDB's AWS SDK cannot read where botocore found the credentials (keys in ~/.aws/config):
            # give it the keys botocore resolved.
            con.execute(config.duckdb_secret_sql(chain=False))
    else:
        con.execute(config.duckdb_secret_sql())
    for statement in config.duckdb_settings_sql():
        con.execute(statement)
