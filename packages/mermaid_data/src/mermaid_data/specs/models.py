"""What the spec commands take and return: the rollup level, and the spec CSVs computed from the lake."""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import polars as pl

from mermaid_data.errors import ConfigError

_DEPTH = re.compile(r"depth(?:\s+|\s*[:=]\s*)(.*)|depth", re.IGNORECASE)
TO_FIX = "pass --to root, --to 'depth N' (N >= 1; root is depth 1) or --to FILE.csv (a ba_id column of targets)"


class SpecKind(StrEnum):
    """The spec CSVs the commands write, named as ``snapshot create`` takes them."""

    ROLLUPS = "rollups"  # --rollups
    INCLUDE = "include"  # --include
    SOURCES = "sources"  # --coralnet-sources

    @property
    def noun(self) -> str:
        return {"rollups": "rollup rule(s)", "include": "class(es)", "sources": "CoralNet source(s)"}[self.value]


class RollupMode(StrEnum):
    DEPTH = "depth"  # the ancestor at a depth of the tree (root = depth 1)
    TARGETS = "targets"  # the nearest ancestor-or-self listed in a CSV


@dataclass(frozen=True)
class RollupLevel:
    """Where ``spec rollups`` sends each benthic attribute: ``--to root | 'depth N' | targets.csv``."""

    mode: RollupMode
    depth: int | None = None
    targets_csv: Path | None = None

    @classmethod
    def root(cls) -> RollupLevel:
        return cls(RollupMode.DEPTH, depth=1)

    @classmethod
    def at_depth(cls, depth: int) -> RollupLevel:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ConfigError(f"rollup depth {depth!r} is not a positive integer", fix=TO_FIX)
        return cls(RollupMode.DEPTH, depth=depth)

    @classmethod
    def targets(cls, path: str | Path) -> RollupLevel:
        return cls(RollupMode.TARGETS, targets_csv=Path(path))

    @classmethod
    def parse(cls, text: str) -> RollupLevel:
        """``root``, ``depth N`` (also ``depth=N``, ``depth:N``), or the path of an existing CSV file."""
        value = text.strip()
        if value.lower() == "root":
            return cls.root()
        match = _DEPTH.fullmatch(value)
        if match:
            number = (match.group(1) or "").strip()
            if not number.isdigit() or int(number) < 1:
                raise ConfigError(f"--to {text!r}: depth needs a positive integer", fix=TO_FIX)
            return cls.at_depth(int(number))
        if Path(value).is_file():
            return cls.targets(value)
        raise ConfigError(f"--to {text!r} is neither root, 'depth N' nor an existing CSV file", fix=TO_FIX)

    def describe(self) -> str:
        if self.mode is RollupMode.TARGETS:
            return f"to its nearest ancestor-or-self listed in {self.targets_csv}"
        if self.depth == 1:
            return "to its root (depth 1)"
        return f"to its ancestor at depth {self.depth}"


@dataclass(frozen=True)
class SpecCsv:
    """A spec CSV computed from the lake: its rows, what they are in words, and the table versions read."""

    kind: SpecKind
    frame: pl.DataFrame
    description: str
    input_versions: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.frame.height

    def to_csv(self) -> str:
        """The CSV text; '' (no growth form) is written as an empty field, as in the seed's files."""
        text_columns = [name for name, dtype in self.frame.schema.items() if dtype == pl.String]
        return self.frame.with_columns(pl.col(text_columns).replace("", None)).write_csv()

    def write(self, path: str | Path) -> Path:
        """Write the CSV to ``path`` whole or not at all (a temporary file renamed into place)."""
        path = Path(path)
        if not path.parent.is_dir():
            raise ConfigError(f"folder {path.parent} does not exist", where=str(path),
                              fix="create the folder first, or pick another --output")
        scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            scratch.write_text(self.to_csv(), encoding="utf-8")
            os.replace(scratch, path)
        except OSError as exc:
            scratch.unlink(missing_ok=True)
            raise ConfigError(f"cannot write ({exc.strerror})", where=str(path),
                              fix="check the path and its permissions") from None
        return path

    def summary(self) -> str:
        return f"{self.rows:,} {self.kind.noun}: {self.description}"


@dataclass(frozen=True)
class LabelSpec(SpecCsv):
    """The include list of ``spec labels`` plus every class that was counted, kept or not.

    ``counted`` has one row per (BA, GF) class after the recipe's steps 1-4 (``ba_id, ba_name, gf_id,
    gf_name, annotations, rank, drop_reason``); ``frame`` is its kept part in the include CSV's columns.
    """

    counted: pl.DataFrame = field(default_factory=pl.DataFrame)
    min_annotations: int = 1
    top: int | None = None

    @property
    def classes_kept(self) -> int:
        return self.frame.height

    @property
    def classes_dropped(self) -> int:
        return self.counted.height - self.frame.height

    @property
    def annotations_kept(self) -> int:
        return int(self.frame["annotations"].sum()) if self.frame.height else 0

    @property
    def annotations_dropped(self) -> int:
        total = int(self.counted["annotations"].sum()) if self.counted.height else 0
        return total - self.annotations_kept

    def dropped_for(self, reason: str) -> tuple[int, int]:
        """(classes, annotations) dropped for ``reason`` ('fewer_annotations' or 'not_in_top')."""
        part = self.counted.filter(pl.col("drop_reason") == reason)
        return part.height, int(part["annotations"].sum()) if part.height else 0

    def summary(self) -> str:
        text = (f"{self.classes_kept:,} class(es) kept ({self.annotations_kept:,} annotations) of "
                f"{self.counted.height:,} counted: {self.description}")
        few, few_n = self.dropped_for("fewer_annotations")
        if few:
            text += f"; {few:,} dropped: fewer than {self.min_annotations:,} annotations ({few_n:,} annotations)"
        past, past_n = self.dropped_for("not_in_top")
        if past:
            text += f"; {past:,} dropped: not in the top {self.top:,} ({past_n:,} annotations)"
        return text
