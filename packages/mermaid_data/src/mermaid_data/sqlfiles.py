"""Every SQL statement the lake runs lives in ``sql/<name>.sql``; this loads them by name.

In a wheel the files ship as ``mermaid_data/sql``; in a source checkout they are read from the
repository's top-level ``sql/`` folder. ``use_sql_dir(path)`` reads another copy of the folder instead
(tests edit a copy to prove that every file counts).

``composition()`` records every file handed out while it is open: a snapshot recipe hashes exactly
the SQL texts its queries were composed of, as the loader saw them, so no hand-kept list can miss one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

_PACKAGED = Path(__file__).parent / "sql"
_CHECKOUT = Path(__file__).resolve().parents[4] / "sql"
_overrides: list[Path] = []
_recording: ContextVar[dict[str, str] | None] = ContextVar("sql_composition", default=None)


def sql_dir() -> Path:
    """The folder holding the project's .sql files."""
    if _overrides:
        return _overrides[-1]
    return _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT


@contextmanager
def use_sql_dir(path: str | Path) -> Iterator[Path]:
    """Load SQL from ``path`` (a copy of ``sql/``) while the block runs, in every thread."""
    folder = Path(path).resolve()
    _overrides.append(folder)
    try:
        yield folder
    finally:
        _overrides.remove(folder)


@cache
def _read(folder: Path, name: str) -> str:
    path = folder / f"{name}.sql"
    if not path.is_file():
        raise KeyError(f"no SQL file named {name!r} in {folder}")
    return path.read_text(encoding="utf-8")


def load_sql(name: str) -> str:
    """The text of ``sql/<name>.sql`` (``name`` may contain a sub-folder, e.g. ``views/annotations``)."""
    text = _read(sql_dir(), name)
    recorded = _recording.get()
    if recorded is not None:
        recorded[name] = text
    return text


@contextmanager
def composition() -> Iterator[dict[str, str]]:
    """Record ``{name: text}`` of every SQL file loaded in this thread while the block runs.

    Nested compositions also record into the enclosing one.
    """
    outer = _recording.get()
    texts: dict[str, str] = {}
    token = _recording.set(texts)
    try:
        yield texts
    finally:
        _recording.reset(token)
        if outer is not None:
            outer.update(texts)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sql_sha256(name: str) -> str:
    """Hash of one SQL file's text, for recipes that must change when the SQL does."""
    return sha256_text(load_sql(name))


def sql_literal(text: str) -> str:
    """``text`` as a SQL string literal (quotes doubled): for the few places DuckDB takes no parameter,
    such as file lists, COPY targets and secrets. The one quoting helper of the project."""
    return "'" + str(text).replace("'", "''") + "'"
