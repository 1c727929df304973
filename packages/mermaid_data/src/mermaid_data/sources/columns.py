"""Header matching shared by the adapters: case, spaces, underscores and a BOM never matter."""

from __future__ import annotations

import difflib
import re

from mermaid_data.errors import SourceFormatError


def normalize(name: str) -> str:
    """'Image ID', 'image_id', ' IMAGE-ID ' all normalize to 'imageid'."""
    return re.sub(r"[^a-z0-9]", "", name.replace("\ufeff", "").lower())


def match_columns(
    found: list[str], wanted: dict[str, str], *, where: str, fix: str
) -> dict[str, str]:
    """Map each canonical name in ``wanted`` (canonical → display name) to the actual header name.

    Raises SourceFormatError naming the missing column and the closest header present.
    """
    by_norm = {normalize(name): name for name in found}
    out: dict[str, str] = {}
    for canonical, display in wanted.items():
        actual = by_norm.get(normalize(display)) or by_norm.get(normalize(canonical))
        if actual is None:
            close = difflib.get_close_matches(normalize(display), list(by_norm), n=1, cutoff=0.6)
            hint = f" (found {by_norm[close[0]]!r}: misspelled?)" if close else ""
            raise SourceFormatError(
                f"missing column {display!r}{hint}; header is {found}",
                where=where,
                column=display,
                fix=fix,
            )
        out[canonical] = actual
    return out
