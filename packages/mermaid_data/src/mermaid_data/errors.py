"""One root error for the lake; every subclass names what is wrong, where, and what to do about it.

The CLI prints ``str(error)`` (one line, no stack trace) for any ``MermaidDataError``.
"""

from __future__ import annotations


class MermaidDataError(Exception):
    """Root of every error that mermaid_data raises on purpose.

    ``where`` names the file/URI (and row or column when known), ``problem`` says what is wrong and
    ``fix`` says what the user should do. ``str()`` joins them into one line.
    """

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
