"""The public MERMAID taxonomy bundled with the package, and the command that refreshes it.

``load_bundled_taxonomy()`` reads the bundle (``data/``, see ``data/README.md`` for its provenance);
``snapshot_taxonomy(api, dest)`` fetches the taxonomy from the live API or a folder of saved pages and
writes a bundle (``mermaid-data taxonomy snapshot --api URL|DIR DEST``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mermaid_data.settings import get_settings
from mermaid_data.sources.api import fetch_taxonomy
from mermaid_data.taxonomy.bundle import (
    BUNDLE_DIR,
    BUNDLE_FILES,
    BundledTaxonomy,
    load_bundled_taxonomy,
    read_bundle,
    read_label_counts,
    write_bundle,
)

__all__ = [
    "BUNDLE_DIR",
    "BUNDLE_FILES",
    "BundledTaxonomy",
    "TaxonomySnapshot",
    "load_bundled_taxonomy",
    "read_bundle",
    "snapshot_taxonomy",
]


@dataclass(frozen=True)
class TaxonomySnapshot:
    """What ``snapshot_taxonomy`` wrote."""

    dest: Path
    files: tuple[Path, ...]
    benthic_attributes: int
    growth_forms: int
    label_mappings: int
    coralnet_labels: int
    #: Where the label counts came from: the CSV given, or the bundle shipped with the package.
    counts_from: str
    #: CoralNet labels of the mapping that the counts source does not know (written with count 0).
    labels_without_count: int


def snapshot_taxonomy(api: str, dest: Path, *, label_counts_csv: Path | None = None) -> TaxonomySnapshot:
    """Fetch the taxonomy from ``api`` (URL or page folder) and write a bundle into ``dest``.

    The API does not serve CoralNet label frequencies: they come from ``label_counts_csv`` when given
    (e.g. ``initial_label_pop.csv``), else from the bundle shipped with this package.
    """
    settings = get_settings()
    taxonomy = fetch_taxonomy(api, timeout_s=settings.network_timeout_s, retries=settings.network_retries)
    if label_counts_csv is not None:
        known, counts_from = read_label_counts(Path(label_counts_csv)), str(label_counts_csv)
    else:
        known, counts_from = load_bundled_taxonomy().label_counts, f"the bundled taxonomy ({BUNDLE_DIR})"
    labels = sorted(set(taxonomy.label_mappings.column("provider_id").to_pylist()), key=int)
    counts = {label: known.get(label, 0) for label in labels}
    files = write_bundle(Path(dest), taxonomy, counts)
    return TaxonomySnapshot(
        dest=Path(dest),
        files=tuple(files),
        benthic_attributes=taxonomy.benthic_attributes.num_rows,
        growth_forms=taxonomy.growth_forms.num_rows,
        label_mappings=taxonomy.label_mappings.num_rows,
        coralnet_labels=len(labels),
        counts_from=counts_from,
        labels_without_count=sum(1 for label in labels if label not in known),
    )
