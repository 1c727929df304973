"""MERMAID-API-shaped payloads of the real public taxonomy, from the bundle shipped with mermaid_data.

The bundle (``mermaid_data/taxonomy/data/``) is the public MERMAID taxonomy; see its README for where it
came from. These payloads carry extra keys a reader must ignore, as the live API's do.
"""

from __future__ import annotations

from typing import Any

from mermaid_data.taxonomy import load_bundled_taxonomy

BA_ROOT_NAMES = frozenset(
    {
        "Hard coral",
        "Soft coral",
        "Macroalgae",
        "Turf algae",
        "Sand",
        "Rubble",
        "Bare substrate",
        "Crustose coralline algae",
        "Cyanobacteria",
        "Seagrass",
        "Other invertebrates",
        "Other",
    }
)

Payloads = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


def choices_with(growth_forms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A ``choices/`` body: the growth forms among two other entries, as the live API lists them."""
    return [
        {"name": "benthiclifehistories", "data": [{"id": "8f5e5a5e-0b7c-4f63-9c1d-2d3f4a5b6c7d", "name": "competitive"}]},
        {"name": "growthforms", "data": growth_forms},
        {"name": "visibilities", "data": []},
    ]


def load_reference_payloads() -> Payloads:
    """``(benthic_attribute_results, choices, labelmapping_results)`` of the bundled taxonomy, API-shaped.

    BA results carry an extra ``regions`` key and label mappings an ``updated_on`` (the live API sends
    more keys than the lake reads).
    """
    bas, gfs, mappings = load_bundled_taxonomy().api_payloads()
    for ba in bas:
        ba["regions"] = []
    for mapping in mappings:
        mapping["updated_on"] = "2024-01-01T00:00:00Z"
    return bas, choices_with(gfs), mappings


def reference_annotation_counts() -> dict[str, int]:
    """CoralNet label id -> public annotation count (the real long-tail label frequencies)."""
    return dict(load_bundled_taxonomy().label_counts)
