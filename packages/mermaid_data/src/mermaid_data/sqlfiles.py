"""Every SQL statement the lake runs lives in ``sql/<name>.sql``; this loads them by name.

In a wheel the files ship as ``mermaid_data/sql``; in a source checkout they are read from the
repository's top-level ``sql/`` folder.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

_PACKAGED = Path(__file__).parent / "sql"
_CHECKOUT = Path(__file__).resolve().parents[4] / "sql"


def sql_dir() -> Path:
    """The folder holding the project's .sql files."""
    return _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT


@cache
def load_sql(name: str) -> str:
    """The text of ``sql/<name>.sql`` (``name`` may contain a sub-folder, e.g. ``views/annotations``)."""
    path = sql_dir() / f"{name}.sql"
    if not path.is_file():
        raise KeyError(f"no SQL file named {name!r} in {sql_dir()}")
    return path.read_text(encoding="utf-8")


def sql_sha256(name: str) -> str:
    """Hash of one SQL file's text, for recipes that must change when the SQL does."""
    return hashlib.sha256(load_sql(name).encode("utf-8")).hexdigest()
