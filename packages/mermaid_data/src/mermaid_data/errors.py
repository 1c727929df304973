"""One root error for the lake; every subclass names what is wrong, where, and what to do about it.

The CLI prints ``str(error)`` (one line, no stack trace) for any ``MermaidDataError``, and turns any
other exception into one first with ``from_exception`` (see ``mermaid_data.cli_base``).
"""

from __future__ import annotations

import errno
import re


class MermaidDataError(Exception):
    """Root of every error that mermaid_data raises on purpose.

    ``where`` names the file/URI (and row or column when known), ``problem`` says what is wrong and
    ``fix`` says what the user should do. ``str()`` joins them into one line. ``exit_code`` is the
    CLI's exit status for it: 2 for anything the user can fix (input, settings, environment).
    """

    exit_code = 2

    def __init__(self, problem: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.problem = problem
        self.where = where
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"{self.where}: {self.problem}" if self.where else self.problem
        if self.fix:
            text = f"{text}. Fix: {self.fix}"
        return text


class SourceFormatError(MermaidDataError):
    """An input file (annotations parquet/CSV, spec CSV, API page) does not have the shape we need."""

    def __init__(
        self,
        problem: str,
        *,
        where: str,
        fix: str,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.row = row
        self.column = column
        location = where
        if row is not None:
            location += f", row {row}"
        if column is not None:
            location += f", column {column!r}"
        super().__init__(problem, where=location, fix=fix)


class SourceUnreachableError(MermaidDataError):
    """A URI (S3 endpoint, API, local path) could not be reached within the timeout and retries."""


class LakeError(MermaidDataError):
    """The lake itself is missing, unreadable or asked for something it does not hold."""


class ConfigError(MermaidDataError):
    """A setting or command-line option is invalid."""


class SnapshotError(MermaidDataError):
    """A snapshot cannot be built, found or verified (too many missing features, unknown ID, ...)."""


class TaxonomyError(LakeError):
    """The lake's benthic attribute tree cannot be walked: a cycle in parent_id, or an unknown parent."""


class StorageError(MermaidDataError):
    """A file or folder cannot be read or written: disk full, read-only, no permission, no such path.

    ``errno`` is the operating system's error number when one is known.
    """

    def __init__(self, problem: str, *, where: str | None = None, fix: str | None = None,
                 errno: int | None = None) -> None:
        self.errno = errno
        super().__init__(problem, where=where, fix=fix)


class UnexpectedError(MermaidDataError):
    """An exception nobody anticipated (a bug): the CLI shows its type and first line, exit status 1."""

    exit_code = 1


#: What an OS error number means for the user, and what to do about it.
OS_ERRORS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("disk full (no space left on device)",
                   "free space on that disk, or write somewhere else (another --lake, --output or TMPDIR)"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota, or write somewhere else"),
    errno.EROFS: ("read-only file system",
                  "choose a location on a writable disk (another --lake or --output), or remount it read-write"),
    errno.EACCES: ("permission denied", "check the permissions of that path, or choose another location"),
    errno.EPERM: ("operation not permitted", "check the permissions of that path, or choose another location"),
    errno.ENOENT: ("no such file or directory", "check the path (its folder must exist)"),
    errno.ENOTDIR: ("a part of that path is a file, not a folder", "check the path"),
    errno.EISDIR: ("that path is a folder, not a file", "give the path of a file"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path"),
    errno.EMFILE: ("too many open files", "raise the limit (`ulimit -n 4096`) and run again"),
    errno.EIO: ("input/output error (the disk or network file system failed)", "check the disk, then run again"),
}
#: Libraries that wrap OS errors in their own exceptions (DuckDB, deltalake, polars) still say which one.
_OS_ERROR_TEXT = [
    (re.compile(r"no space left on device|os error 28\b", re.IGNORECASE), errno.ENOSPC),
    (re.compile(r"disk quota exceeded|os error 122\b", re.IGNORECASE), errno.EDQUOT),
    (re.compile(r"read-only file system|os error 30\b", re.IGNORECASE), errno.EROFS),
    (re.compile(r"permission denied|os error 13\b", re.IGNORECASE), errno.EACCES),
]
_MEMORY_TEXT = re.compile(r"out of memory|cannot allocate memory|os error 12\b", re.IGNORECASE)


def one_line(text: str, limit: int = 400) -> str:
    """``text`` without line breaks (a multi-line library message becomes one line), at most ``limit`` chars."""
    flat = re.sub(r"\s*\n\s*", " ", str(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def from_exception(exc: BaseException, *, where: str | None = None) -> MermaidDataError:
    """Any exception as a ``MermaidDataError``: ours as they are, OS errors named, anything else a bug.

    ``where`` (e.g. the lake being written) names an OS error that does not say which file it hit.
    """
    if isinstance(exc, MermaidDataError):
        return exc
    if isinstance(exc, OSError) and exc.errno in OS_ERRORS:
        problem, fix = OS_ERRORS[exc.errno]
        if exc.filename is not None:
            where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
        return StorageError(problem, where=where, fix=fix, errno=exc.errno)
    text = one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        where = str(exc.filename) if exc.filename is not None else where
        return StorageError(exc.strerror.lower(), where=where, fix="check the path and the disk", errno=exc.errno)
    for pattern, number in _OS_ERROR_TEXT:
        if pattern.search(text):
            problem, fix = OS_ERRORS[number]
            return StorageError(f"{problem} ({text})", where=where, fix=fix, errno=number)
    if isinstance(exc, MemoryError) or _MEMORY_TEXT.search(text):
        return MermaidDataError(
            f"out of memory ({text})",
            fix="free memory, or lower MERMAID_DUCKDB_MEMORY_LIMIT (DuckDB then spills to disk)",
        )
    return UnexpectedError(
        f"unexpected {type(exc).__name__}: {text}",
        fix="this is a bug; run the command again with --debug right after the program name "
            "(e.g. `mermaid-data --debug sql ...`) and report the traceback",
    )
