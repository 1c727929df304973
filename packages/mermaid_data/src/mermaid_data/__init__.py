"""mermaid_data: one versioned Delta lake of MERMAID and CoralNet point annotations, queried with DuckDB."""

from mermaid_data.errors import (
    ConfigError,
    LakeError,
    MermaidDataError,
    SourceFormatError,
    SourceUnreachableError,
)
from mermaid_data.lake import Lake
from mermaid_data.settings import Settings, get_settings

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
