"""Everything ``mermaid-data`` prints: tables, frames in every output format, errors and warnings.

Results go to stdout, errors, warnings and progress to stderr. A table printed to a pipe or a file is
as wide as its widest cell (nothing is cut or wrapped: people copy snapshot IDs from it); on a
terminal it fits the window and wraps cells instead of cutting them. Heavy libraries (polars) are
imported by the functions that need them, so ``--help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from mermaid_data.errors import OS_ERRORS, ConfigError, MermaidDataError, StorageError, from_exception

if TYPE_CHECKING:
    import polars as pl
    from rich.table import Table

console = Console()
err = Console(stderr=True, highlight=False, soft_wrap=True)
_UNBOUNDED = 100_000  # the width of a table off a terminal: its natural width
TABLE_ROWS = 200  # rows the table format shows; the others are counted


class Format(str, Enum):
    """Output formats of ``sql`` (``parquet`` needs a file)."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


class TextFormat(str, Enum):
    """Output formats of listings (``snapshot list``, ``history``)."""

    table = "table"
    csv = "csv"
    json = "json"


#: ``--output`` file name endings and the format each means when ``--format`` is not given.
SUFFIX_FORMATS = {".csv": Format.csv, ".json": Format.json, ".parquet": Format.parquet, ".txt": Format.table}


def out(file=None) -> Console:
    """The console for results: stdout's on a terminal, else one wide enough that nothing is cut."""
    if file is None and console.is_terminal:
        return console
    return Console(file=file, width=_UNBOUNDED, highlight=False)


# ---- errors and warnings ------------------------------------------------------------------------


def print_error(error: MermaidDataError) -> None:
    """``error: <where>: <problem>. Fix: <fix>`` as one line on stderr (markup in it printed as is)."""
    err.print(f"[bold red]error:[/] {escape(str(error))}")


def print_warning(text: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(str(text))}")


# ---- output files and formats -------------------------------------------------------------------


def resolve_format(format: Format | None, output: Path | None) -> Format:
    """``--format``, or the one the ``--output`` file name says (.csv .json .parquet .txt), or table."""
    if format is None:
        if output is None:
            return Format.table
        inferred = SUFFIX_FORMATS.get(output.suffix.lower())
        if inferred is None:
            raise ConfigError(
                f"cannot tell the output format from the file name {output.name!r}",
                where=str(output),
                fix="pass --format table|csv|json|parquet, or name the file .csv, .json, .parquet or .txt",
            )
        return inferred
    if format is Format.parquet and output is None:
        raise ConfigError("--format parquet needs --output FILE", fix="add --output result.parquet")
    return format


def check_output(output: Path | None) -> None:
    """Refuse an ``--output`` that cannot be written, before any work: no folder, a folder, read-only."""
    if output is None:
        return
    where = str(output)
    if output.is_dir():
        raise StorageError("is a folder, not a file", where=where, fix="give --output a file name inside it")
    folder = output.absolute().parent
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise StorageError(f"the folder {folder} {what}", where=where,
                           fix=f"create it first (mkdir -p {folder}) or choose another --output")
    if not os.access(folder, os.W_OK):
        number = _unwritable_reason(folder)
        raise StorageError(f"the folder {folder}: {OS_ERRORS[number][0]}", where=where, errno=number,
                           fix=OS_ERRORS[number][1])


def _unwritable_reason(folder: Path) -> int:
    import errno

    return errno.EROFS if os.statvfs(folder).f_flag & os.ST_RDONLY else errno.EACCES


def write_output(output: Path, write) -> None:
    """``write(path)`` to ``output`` through a temporary file (a failed write leaves nothing behind).

    Devices and pipes (``/dev/stdout``, ``/dev/full``) are written directly. Any failure becomes one
    error naming ``output``.
    """
    direct = output.exists() and not output.is_file()
    target = output if direct else output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        write(target)
        if not direct:
            os.replace(target, output)
    except Exception as exc:
        if not direct:
            target.unlink(missing_ok=True)
        error = from_exception(exc)
        if isinstance(error, StorageError) and error.errno in OS_ERRORS:
            problem, fix = OS_ERRORS[error.errno]
            error = StorageError(problem, where=str(output), fix=fix, errno=error.errno)
        elif error.where is None:
            error = StorageError(f"cannot write: {error.problem}", where=str(output), fix=error.fix or "check the path")
        raise error from exc


def write_frame(frame: pl.DataFrame, format: Format | str, output: Path | None) -> None:
    """``frame`` as a table, CSV, JSON or Parquet on stdout or in ``output`` (see ``resolve_format``)."""
    format = Format(format)
    if format is Format.parquet:
        if output is None:
            raise ConfigError("--format parquet needs --output FILE", fix="add --output result.parquet")
        write_output(output, lambda path: frame.write_parquet(path))
    elif format in (Format.csv, Format.json):
        text = frame.write_csv() if format is Format.csv else frame.write_json() + "\n"
        if output is None:
            sys.stdout.write(text)
        else:
            write_output(output, lambda path: Path(path).write_text(text, encoding="utf-8"))
    elif output is None:
        print_frame(frame, out())
    else:
        def write_table(path) -> None:
            with open(path, "w", encoding="utf-8") as handle:
                print_frame(frame, out(handle))

        write_output(output, write_table)


def print_frame(frame: pl.DataFrame, target: Console | None = None) -> None:
    """The first ``TABLE_ROWS`` rows as a table; the rest are counted."""
    target = target or out()
    target.print(frame_table(frame.head(TABLE_ROWS)))
    if frame.height > TABLE_ROWS:
        target.print(f"... {frame.height - TABLE_ROWS:,} more rows (use --format csv --output FILE for all)")


def frame_table(frame: pl.DataFrame, title: str | None = None) -> Table:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for name in frame.columns:
        table.add_column(name, overflow="fold")
    for row in frame.iter_rows():
        table.add_row(*(escape("" if v is None else str(v)) for v in row))
    return table


def write_listing(frame: pl.DataFrame, format: TextFormat, table_columns: list[str]) -> None:
    """A listing on stdout: ``table_columns`` as a table, or every column as CSV / JSON."""
    if format is TextFormat.table:
        print_frame(frame.select(table_columns))
    else:
        write_frame(frame, format.value, None)


# ---- command results ----------------------------------------------------------------------------


def print_report(report, lake) -> None:
    """What ``ingest`` planned, wrote and the lake's figures after it."""
    from rich.table import Table

    target = out()
    plan = Table(title="dry run: plan" if report.dry_run else "sources", show_lines=False)
    for col in ("site", "source", "action", "rows", "uri"):
        plan.add_column(col, justify="right" if col == "rows" else "left", overflow="fold")
    changed = report.changed
    shown = changed[:40]
    for p in shown:
        plan.add_row(str(p.site), p.source_id, p.action, "" if p.rows is None else f"{p.rows:,}", escape(p.uri))
    unchanged = len(report.plan) - len(changed)
    target.print(plan)
    extra = f" (+{len(changed) - len(shown)} more changed)" if len(changed) > len(shown) else ""
    target.print(f"{len(changed)} source(s) to write{extra}, {unchanged} unchanged; taxonomy: {report.taxonomy_action}")
    if report.dry_run:
        target.print("dry run: nothing was written")
        return
    if report.versions_written:
        target.print("versions written: " + ", ".join(f"{k}@v{v}" for k, v in sorted(report.versions_written.items())))
    else:
        target.print("nothing changed: no new table versions")
    if report.summary:
        target.print(f"lake {escape(str(lake))}:", soft_wrap=True)
        summary = Table()
        summary.add_column("figure")
        summary.add_column("value", justify="right")
        for key, value in report.summary.items():
            summary.add_row(key.replace("_", " "), f"{value:,}")
        target.print(summary)


def print_stage_counts(manifest: dict) -> None:
    """A snapshot's rows dropped and remaining per step."""
    from rich.table import Table

    table = Table(title=f"snapshot {manifest['snapshot_id']}: rows per step")
    for col in ("step", "reason", "dropped", "remaining"):
        table.add_column(col, justify="right" if col in ("dropped", "remaining") else "left", overflow="fold")
    for row in manifest["stage_counts"]:
        table.add_row(row["step"], row["reason"], f"{row['dropped']:,}", f"{row['remaining']:,}")
    out().print(table)


def print_summary(title: str, summary: Any) -> None:
    """A result object (a dataclass) as a two-column table of its fields, numbers with separators."""
    from rich.table import Table

    table = Table(title=escape(title))
    table.add_column("figure")
    table.add_column("value", justify="right", overflow="fold")
    for field in dataclasses.fields(summary):
        value = getattr(summary, field.name)
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, int):
            text = f"{value:,}"
        elif isinstance(value, dict):
            text = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            text = f"{len(value):,} item(s)" if len(value) > 8 else ", ".join(map(str, value))
        else:
            text = str(value)
        table.add_row(field.name.replace("_", " "), escape(text))
    out().print(table)
