"""DuckDB connections: httpfs loaded from its wheel (no downloads) and S3 configured from AWS_* vars."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import duckdb

from mermaid_data.settings import get_settings


@lru_cache(maxsize=1)
def _httpfs_path() -> str:
    import duckdb_extension_httpfs

    found = sorted(Path(duckdb_extension_httpfs.__path__[0]).rglob("httpfs.duckdb_extension"))
    if not found:  # pragma: no cover - packaging error
        raise RuntimeError("duckdb-extension-httpfs is installed without its extension file")
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
    """Load httpfs from the wheel and create an S3 secret from the standard AWS_* variables."""
    con.execute(f"LOAD '{_httpfs_path()}'")
    settings = get_settings()
    parts = ["TYPE s3"]
    params: list[str] = []
    key_id = os.environ.get("AWS_ACCESS_KEY_ID")
    if key_id and not settings.s3_anonymous:
        parts += ["KEY_ID ?", "SECRET ?"]
        params += [key_id, os.environ.get("AWS_SECRET_ACCESS_KEY", "")]
        if os.environ.get("AWS_SESSION_TOKEN"):
            parts.append("SESSION_TOKEN ?")
            params.append(os.environ["AWS_SESSION_TOKEN"])
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    parts.append("REGION ?")
    params.append(region)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        parts += ["ENDPOINT ?", "URL_STYLE 'path'", f"USE_SSL {'true' if parsed.scheme == 'https' else 'false'}"]
        params.append(parsed.netloc or parsed.path)
    # CREATE SECRET does not take prepared parameters; values are quoted literals, escaped here.
    rendered = []
    values = iter(params)
    for part in parts:
        if part.endswith("?"):
            value = next(values).replace("'", "''")
            part = part[:-1] + f"'{value}'"
        rendered.append(part)
    con.execute(f"CREATE OR REPLACE SECRET mermaid_s3 ({', '.join(rendered)})")
    timeout_ms = int(settings.network_timeout_s * 1000)
    con.execute(f"SET http_timeout = {timeout_ms}")
    con.execute(f"SET http_retries = {max(0, settings.network_retries)}")
