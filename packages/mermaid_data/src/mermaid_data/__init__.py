"""mermaid_data: one versioned Delta lake of MERMAID and CoralNet point annotations, queried with DuckDB.

``Lake``, ``Settings`` and ``get_settings`` are imported on first use: ``import mermaid_data`` (and so
``mermaid-data --help``) does not load DuckDB, deltalake, polars or pyarrow.
"""

from mermaid_data.errors import (
    ConfigError,
    LakeError,
    MermaidDataError,
    SourceFormatError,
    SourceUnreachableError,
)

__all__ = [
    "ConfigError",
    "Lake",
    "LakeError",
    "MermaidDataError",
    "Settings",
    "SourceFormatError",
    "SourceUnreachableError",
    "get_settings",
]


def __getattr__(name: str):
    if name == "Lake":
        from mermaid_data.lake import Lake

        return Lake
    if name in ("Settings", "get_settings"):
        from mermaid_data import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'mermaid_data' has no attribute {name!r}")
