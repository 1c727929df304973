"""What a model was trained on, told from the snapshot's manifest: MLflow params and the default model name.

A run trained from a snapshot ID has no ``DatasetOptions`` of its own: its recipe is the snapshot's,
recorded in the manifest (``recipe.options``, ``recipe.spec_tables`` with each spec file's path, rows and
SHA-256, ``recipe.input_versions``). ``recipe_params`` turns that into params, so MLflow and
``mermaid-train compare`` show the recipe a run really trained with, whichever way the snapshot was made:

- ``dataset.include_mermaid``, ``dataset.coralnet_sources_csv``, ``dataset.drop_growthforms``,
  ``dataset.label_rollup_spec_csv``, ``dataset.included_labels_csv``, ``dataset.excluded_labels_csv``,
  ``dataset.annotation_limit``: the seed's option names, with the manifest's values (spec paths as given
  to ``snapshot create``; '' when the recipe has none);
- ``snapshot.<kind>.path`` / ``.sha256`` / ``.rows`` for each spec table (``sources``, ``rollups``,
  ``include`` or ``exclude``), ``snapshot.sources.ids`` (the CoralNet source ids, comma-separated),
  ``snapshot.label_mode``, ``snapshot.missing_features_allowed``;
- ``snapshot.input_versions.<table>`` (the Delta versions the rows were read at) and ``snapshot.lake_version``
  (the first lake version whose tables are at exactly those versions, when the lake still records it);
- ``snapshot.name``, ``snapshot.created_at``, ``snapshot.recipe_sha256``, ``snapshot.digest`` (the dataset
  digest MLflow shows: the first 32 hex digits of ``content_sha256``).

``default_model_name`` is upstream's rule for a run given no model name (``MLflowOptions.model_name``,
``MERMAID_MODEL_NAME``), applied to the spec files' stems:

    (Include<stem> | Exclude<stem> | AllLabels) [-Rollup<stem>] [-<sources stem>] [-AnnoLimit<N>]

where ``<stem>`` is the file name without its extension, keeping letters and digits only (``coral_rollups.csv``
→ ``coralrollups``), and the whole name is cut to its first 50 characters.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mermaid_data.lake import Lake

    from mermaid_train.options import DatasetOptions

DEFAULT_NAME_MAX = 50  # upstream: MLflow/SageMaker model package group names, with room for a suffix
DIGEST_CHARS = 32  # MLflow stores dataset digests in 36 characters
#: spec kind -> the seed's DatasetOptions field holding that file
SPEC_OPTIONS = {"sources": "coralnet_sources_csv", "rollups": "label_rollup_spec_csv",
                "include": "included_labels_csv", "exclude": "excluded_labels_csv"}


def spec_tables(manifest: dict) -> dict[str, dict]:
    return dict((manifest.get("recipe") or {}).get("spec_tables") or {})


def snapshot_digest(manifest: dict) -> str:
    """The snapshot's dataset digest in MLflow: the first 32 hex digits of its ``content_sha256``."""
    return (manifest.get("content_sha256") or "")[:DIGEST_CHARS]


def recipe_params(manifest: dict, lake: Lake | None = None) -> dict[str, Any]:
    """The snapshot's recipe as MLflow params (module docstring)."""
    recipe = manifest.get("recipe") or {}
    options = recipe.get("options") or {}
    tables = spec_tables(manifest)
    out: dict[str, Any] = {
        "dataset.include_mermaid": bool(options.get("include_mermaid", True)),
        "dataset.drop_growthforms": bool(options.get("drop_growthforms", False)),
        "dataset.annotation_limit": "" if options.get("annotation_limit") is None else int(options["annotation_limit"]),
    }
    for kind, option in SPEC_OPTIONS.items():
        table = tables.get(kind)
        out[f"dataset.{option}"] = table["path"] if table else ""
    for kind, table in sorted(tables.items()):
        out[f"snapshot.{kind}.path"] = table.get("path", "")
        out[f"snapshot.{kind}.sha256"] = table.get("sha256", "")
        out[f"snapshot.{kind}.rows"] = len(table.get("rows") or ())
    if "sources" in tables:
        ids = sorted((str(r[0]) for r in tables["sources"].get("rows") or ()), key=_numeric)
        out["snapshot.sources.ids"] = ",".join(ids)
    out["snapshot.label_mode"] = options.get("label_mode", "none")
    out["snapshot.missing_features_allowed"] = options.get("missing_features_allowed", "")
    versions = {k: int(v) for k, v in (recipe.get("input_versions") or {}).items()}
    for table_name, version in sorted(versions.items()):
        out[f"snapshot.input_versions.{table_name}"] = version
    if lake is not None:
        number = lake_version_of(lake, versions)
        out["snapshot.lake_version"] = "" if number is None else number
    out["snapshot.name"] = manifest.get("name") or ""
    out["snapshot.created_at"] = manifest.get("created_at") or ""
    out["snapshot.recipe_sha256"] = manifest.get("recipe_sha256") or ""
    out["snapshot.digest"] = snapshot_digest(manifest)
    return out


def lake_version_of(lake: Lake, versions: dict[str, int]) -> int | None:
    """The first lake version whose tables are at exactly ``versions`` (None if no recorded one is)."""
    if not versions:
        return None
    try:
        found = lake.lake_versions()
    except Exception:  # noqa: BLE001 - a lake without a readable history: the table versions still say it
        return None
    for entry in found:
        if all(entry.tables.get(name) == version for name, version in versions.items()):
            return int(entry.number)
    return None


def _numeric(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (1 << 62, text)


def alphanumeric(text: str) -> str:
    return "".join(c for c in text if c.isalnum())


def default_model_name(*, included: str | Path | None = None, excluded: str | Path | None = None,
                       rollups: str | Path | None = None, sources: str | Path | None = None,
                       annotation_limit: int | None = None) -> str:
    """Upstream's default model name from the recipe's files (module docstring)."""
    if included:
        name = f"Include{alphanumeric(Path(str(included)).stem)}"
    elif excluded:
        name = f"Exclude{alphanumeric(Path(str(excluded)).stem)}"
    else:
        name = "AllLabels"
    if rollups:
        name += f"-Rollup{alphanumeric(Path(str(rollups)).stem)}"
    if sources:
        name += f"-{alphanumeric(Path(str(sources)).stem)}"
    if annotation_limit:
        name += f"-AnnoLimit{int(annotation_limit)}"
    return name[:DEFAULT_NAME_MAX]


def model_name_from_manifest(manifest: dict) -> str:
    """``default_model_name`` of a published snapshot's recipe."""
    tables = spec_tables(manifest)
    options = (manifest.get("recipe") or {}).get("options") or {}
    path = {kind: (tables[kind].get("path") if kind in tables else None) for kind in SPEC_OPTIONS}
    return default_model_name(included=path["include"], excluded=path["exclude"], rollups=path["rollups"],
                              sources=path["sources"], annotation_limit=options.get("annotation_limit"))


def model_name_from_options(options: DatasetOptions) -> str:
    """``default_model_name`` of a recipe given as ``DatasetOptions`` (the files as given)."""
    return default_model_name(included=options.included_labels_csv, excluded=options.excluded_labels_csv,
                              rollups=options.label_rollup_spec_csv, sources=options.coralnet_sources_csv,
                              annotation_limit=options.annotation_limit)


__all__ = ["DEFAULT_NAME_MAX", "default_model_name", "lake_version_of", "model_name_from_manifest",
           "model_name_from_options", "recipe_params", "snapshot_digest"]
