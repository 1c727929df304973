"""The recipe of a snapshot and the ID derived from it.

The ID covers exactly what decides the rows: the Delta version of every input table, the normalized
content hash of each spec CSV, the hash of every SQL file the build's statements are composed of (as
the loader recorded them, see ``snapshot.queries``), the options, and ``SHAPING_SEMANTICS`` (bump it by
hand when the meaning of a step changes without any SQL text changing). Name, message and the lake's
URI are not part of it, nor is the package version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from mermaid_data.snapshot import queries
from mermaid_data.snapshot.spec import SpecTable

SHAPING_SEMANTICS = 1
ID_PREFIX = "snap-"


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a snapshot's rows, in canonical form."""

    input_versions: dict[str, int]
    specs: dict[str, SpecTable]  # kind -> table ("sources", "rollups", "include"/"exclude")
    options: dict
    sql_sha256: dict[str, str]
    semantics: int = SHAPING_SEMANTICS

    def canonical(self) -> dict:
        return {
            "semantics": self.semantics,
            "input_versions": dict(sorted(self.input_versions.items())),
            "specs": {kind: spec.sha256 for kind, spec in sorted(self.specs.items())},
            "options": dict(sorted(self.options.items())),
            "sql_sha256": dict(sorted(self.sql_sha256.items())),
        }

    @property
    def sha256(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def snapshot_id(self) -> str:
        return ID_PREFIX + self.sha256[:16]

    def to_manifest(self) -> dict:
        return {
            **self.canonical(),
            "spec_tables": {kind: spec.to_manifest() for kind, spec in sorted(self.specs.items())},
        }

    @classmethod
    def from_manifest(cls, data: dict) -> Recipe:
        return cls(
            input_versions={k: int(v) for k, v in data["input_versions"].items()},
            specs={k: SpecTable.from_manifest(v) for k, v in data["spec_tables"].items()},
            options=dict(data["options"]),
            sql_sha256=dict(data["sql_sha256"]),
            semantics=int(data["semantics"]),
        )


def current_sql_hashes() -> dict[str, str]:
    """SHA-256 of every SQL file a build is composed of today (``queries.compose``)."""
    return queries.compose().sha256()
