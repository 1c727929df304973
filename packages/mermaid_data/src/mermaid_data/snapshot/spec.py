"""Snapshot recipes: the options and the spec CSVs people write (rollups, include/exclude, sources).

Spec CSVs are read as people write them: only the ID columns are read, extra ``*_name`` columns are
ignored, CRLF, a UTF-8 BOM, blank lines and surrounding spaces are fine, a blank ``gf_id`` means "no
growth form". A malformed UUID, a missing ID column or two rollup rows that disagree are errors naming
the file, line and fix; so is an include or exclude CSV with a header but no rows (an include list
with no rows would publish a snapshot of 0 rows; see ``REFUSED_EMPTY``). The parsed rows are
normalized (sorted, lower-case) and hashed, so the same content gives the same snapshot ID however it
was formatted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from mermaid_data.errors import ConfigError, SourceFormatError
from mermaid_data.sources.coralnet import MAX_SOURCE_ID

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class SpecTable:
    """A parsed spec CSV: its kind, where it came from, normalized rows and their hash."""

    kind: str  # "rollups" | "include" | "exclude" | "sources" | "targets" (spec rollups --to)
    path: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    @property
    def sha256(self) -> str:
        canonical = json.dumps({"kind": self.kind, "columns": self.columns, "rows": self.rows})
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_manifest(self) -> dict:
        return {"kind": self.kind, "path": self.path, "sha256": self.sha256, "columns": list(self.columns),
                "rows": [list(r) for r in self.rows]}

    @classmethod
    def from_manifest(cls, data: dict) -> SpecTable:
        return cls(data["kind"], data["path"], tuple(data["columns"]), tuple(tuple(r) for r in data["rows"]))


COLUMNS = {
    "rollups": ("from_ba_id", "from_gf_id", "to_ba_id", "to_gf_id"),
    "include": ("ba_id", "gf_id"),
    "exclude": ("ba_id", "gf_id"),
    "sources": ("id",),
    "targets": ("ba_id",),
}
OPTIONAL = {"from_gf_id", "to_gf_id", "gf_id"}
#: The command-line option that passes each kind (named in errors).
OPTIONS = {"rollups": "--rollups", "include": "--include", "exclude": "--exclude", "sources": "--coralnet-sources"}
#: Lists that must not be empty: an include list with no rows would publish a snapshot of 0 rows, and an
#: empty exclude list is the wrong file. (No rollup rules, or no sources, is the same as leaving the
#: option out: ``spec rollups`` writes such a file when nothing needs rolling up.)
REFUSED_EMPTY = {"include", "exclude"}
FIXES = {
    "rollups": "a rollup CSV has columns from_ba_id,from_gf_id,to_ba_id,to_gf_id (gf blank = no growth form)",
    "include": "an include CSV has columns ba_id,gf_id (gf blank = no growth form)",
    "exclude": "an exclude CSV has columns ba_id,gf_id (gf blank = no growth form)",
    "sources": "a sources CSV has a column 'id' of CoralNet source ids (integers)",
    "targets": "a targets CSV has a column ba_id of benthic attribute ids (other columns are ignored)",
}


def read_spec_csv(path: str | Path, kind: str) -> SpecTable:
    """Parse and validate one spec CSV (see module docstring)."""
    where = str(path)
    fix = FIXES[kind]
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SourceFormatError(f"cannot read ({exc.strerror})", where=where, fix="check the path") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceFormatError(f"not UTF-8 text ({exc.reason})", where=where, fix="save the file as UTF-8") from None
    lines = list(csv.reader(io.StringIO(text.replace("\r\n", "\n").replace("\r", "\n"))))
    numbered = [(n, [c.strip() for c in line]) for n, line in enumerate(lines, start=1) if any(c.strip() for c in line)]
    if not numbered:
        raise SourceFormatError("empty file (no header line)", where=where, row=1, fix=fix)
    header_line, header = numbered[0]
    lowered = [h.lower() for h in header]
    index = {}
    for col in COLUMNS[kind]:
        if col in lowered:
            index[col] = lowered.index(col)
        elif col not in OPTIONAL:
            raise SourceFormatError(
                f"missing column {col!r} (header: {header})", where=where, row=header_line, column=col, fix=fix
            )
    rows: list[tuple[str, ...]] = []
    for line_no, cells in numbered[1:]:
        values = []
        for col in COLUMNS[kind]:
            value = cells[index[col]] if col in index and index[col] < len(cells) else ""
            values.append(_check(value, col, kind, where, line_no, fix))
        rows.append(tuple(values))
    if not rows and kind in REFUSED_EMPTY:
        raise SourceFormatError(
            "a header but no rows (an empty list is almost certainly the wrong file)", where=where,
            row=header_line + 1, fix=f"add the rows, or leave out {OPTIONS[kind]}",
        )
    rows_sorted = tuple(sorted(set(rows), key=_sort_key(kind)))
    table = SpecTable(kind, where, COLUMNS[kind], rows_sorted)
    if kind == "rollups":
        _check_rollup_conflicts(table, rows, numbered[1:])
    return table


def _sort_key(kind: str):
    if kind == "sources":
        return lambda r: int(r[0])
    return lambda r: r


def _check(value: str, col: str, kind: str, where: str, line: int, fix: str) -> str:
    if kind == "sources":
        digits = value[1:] if value[:1] in ("s", "S") else value
        if not (digits.isascii() and digits.isdigit()):
            raise SourceFormatError(
                f"source id {value!r} is not an integer", where=where, row=line, column=col, fix=fix
            )
        if int(digits) > MAX_SOURCE_ID:
            raise SourceFormatError(
                f"source id {value!r} is too large (CoralNet ids are below 2^63)", where=where, row=line,
                column=col, fix=fix,
            )
        return str(int(digits))
    lowered = value.lower()
    if col in OPTIONAL and lowered in ("", "none", "null"):
        return ""
    if not UUID.match(lowered):
        what = "empty" if not value else f"{value!r} is not a UUID"
        raise SourceFormatError(f"{col} {what}", where=where, row=line, column=col, fix=fix)
    return lowered


def _check_rollup_conflicts(table: SpecTable, rows, numbered) -> None:
    seen: dict[tuple[str, str], tuple[tuple[str, str], int]] = {}
    for (line, _), row in zip(numbered, rows):
        key, target = (row[0], row[1]), (row[2], row[3])
        if key in seen and seen[key][0] != target:
            raise SourceFormatError(
                f"two rollup rows for from ({key[0]}, {key[1] or 'no GF'}) disagree (line {seen[key][1]} says "
                f"{seen[key][0][0]}/{seen[key][0][1] or 'no GF'}, this line says {target[0]}/{target[1] or 'no GF'})",
                where=table.path, row=line, column="to_ba_id",
                fix="keep one rule per from_ba_id/from_gf_id pair",
            )
        seen.setdefault(key, (target, line))


@dataclass(frozen=True)
class SnapshotSpec:
    """What to shape: the seed's DatasetOptions, as a snapshot recipe.

    ``name`` and ``message`` describe the snapshot; they are not part of its identity.
    """

    include_mermaid: bool = True
    coralnet_sources_csv: str | Path | None = None
    drop_growthforms: bool = False
    label_rollup_spec_csv: str | Path | None = None
    included_labels_csv: str | Path | None = None
    excluded_labels_csv: str | Path | None = None
    annotation_limit: int | None = None
    missing_features_allowed: float | None = None  # percent; None = setting MERMAID_MISSING_FEATURES_ALLOWED
    name: str = ""
    message: str = ""

    def validate(self) -> None:
        if self.included_labels_csv and self.excluded_labels_csv:
            raise ConfigError(
                "both an include CSV and an exclude CSV were given",
                where=f"{self.included_labels_csv}, {self.excluded_labels_csv}",
                fix="pass at most one of --include / --exclude",
            )
        if self.annotation_limit is not None and self.annotation_limit < 1:
            raise ConfigError(
                f"annotation limit {self.annotation_limit} must be a positive integer",
                fix="pass --annotation-limit N with N >= 1, or leave it out",
            )
        if self.missing_features_allowed is not None and not 0 <= self.missing_features_allowed <= 100:
            raise ConfigError(
                f"missing features allowed {self.missing_features_allowed} is not a percentage",
                fix="pass --missing-features-allowed between 0 and 100",
            )
