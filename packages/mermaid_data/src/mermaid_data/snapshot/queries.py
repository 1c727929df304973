"""Every SQL text a snapshot build runs, composed once, and the names of the files it was composed of.

``compose()`` builds all of them inside ``sqlfiles.composition()``: the connection's views
(``Lake.connect``), the label groups, the chained steps with each final query, the digest and the
reports. The loader records each file it hands out, and those texts are what the recipe hashes, so the
snapshot ID covers exactly the SQL the rows come from. ``build`` runs only these texts and checks, when
it publishes, that it loaded no file the recipe did not hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from mermaid_data import sqlfiles
from mermaid_data.lake import view_sql

STEPS = (
    "snapshot/01_map",
    "snapshot/02_sources",
    "snapshot/03_drop_growthforms",
    "snapshot/04_rollup",
    "snapshot/05_labels",
    "snapshot/06_features",
    "snapshot/07_limit",
)
STEP_VIEWS = ("step_map", "step_sources", "step_drop_growthforms", "step_rollup", "step_labels",
              "step_features", "step_limit")
NO_LIMIT_STEP = "snapshot/07_no_limit"
REPORT_SQL = {
    "ba_counts.csv": "snapshot/report_ba_counts",
    "bagf_counts.csv": "snapshot/report_bagf_counts",
    "label_mapping.csv": "snapshot/report_label_mapping",
    "project_before": "snapshot/report_project_before",
}


def shaping_query(final_sql: str, through: int = len(STEPS), *, limit_binds: bool = True) -> str:
    """The chained steps as one statement: ``WITH step_map AS (...), ... <final_sql>``."""
    steps = list(STEPS[:through])
    if through == len(STEPS) and not limit_binds:
        steps[-1] = NO_LIMIT_STEP
    ctes = ", ".join(f"{view} AS ({sqlfiles.load_sql(step)})" for view, step in zip(STEP_VIEWS, steps))
    return f"WITH {ctes} {final_sql}"


@dataclass(frozen=True)
class SnapshotSql:
    """The statements of one build; ``files`` maps each SQL file they were composed of to its text."""

    connection: tuple[str, ...]
    label_groups: str
    group_counts: str
    feature_counts: str
    missing_feature_examples: str
    rows_limited: str
    rows_unlimited: str
    digest: str
    reports: dict[str, str]
    files: dict[str, str]

    def sha256(self) -> dict[str, str]:
        return {name: sqlfiles.sha256_text(text) for name, text in sorted(self.files.items())}


def compose() -> SnapshotSql:
    """Compose every statement a build may run (see the module docstring)."""
    load = sqlfiles.load_sql
    with sqlfiles.composition() as files:
        parts = {
            "connection": tuple(view_sql()),
            "label_groups": load("snapshot/label_groups"),
            "group_counts": shaping_query(load("snapshot/group_counts"), through=5),
            "feature_counts": shaping_query(load("snapshot/feature_counts"), through=6),
            "missing_feature_examples": shaping_query(load("snapshot/missing_feature_examples"), through=6),
            "rows_limited": shaping_query(load("snapshot/rows"), limit_binds=True),
            "rows_unlimited": shaping_query(load("snapshot/rows"), limit_binds=False),
            "digest": load("snapshot/digest"),
            "reports": {report: load(name) for report, name in REPORT_SQL.items()},
        }
    return SnapshotSql(**parts, files=dict(files))
