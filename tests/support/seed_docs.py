"""The seed documentation's examples as docs/training.md quotes them: Python blocks and spec CSV blocks."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def seed_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split("## The seed examples", 1)[1].split("\n## ", 1)[0]


def _blocks() -> list[tuple[str, str]]:
    """``(language, text)`` of every fenced code block of the section, in order."""
    blocks: list[tuple[str, str]] = []
    language, lines = None, []
    for line in seed_section().splitlines(keepends=True):
        if line.startswith("```"):
            if language is None:
                language, lines = line[3:].strip(), []
            else:
                blocks.append((language, "".join(lines)))
                language = None
        elif language is not None:
            lines.append(line)
    return blocks


def seed_python_examples() -> list[str]:
    return [text for language, text in _blocks() if language == "python"]


def seed_csv(header_start: str) -> str:
    """The one plain code block of the section whose first line starts with ``header_start``, verbatim."""
    found = [text for language, text in _blocks() if not language and text.startswith(header_start)]
    assert len(found) == 1, f"expected one CSV block starting {header_start!r}, found {len(found)}"
    return found[0]


#: The seed's rollup example (Acropora::Branching -> Hard coral::Branching, Porites::Massive -> Porites).
def seed_rollups_csv() -> str:
    return seed_csv("from_ba_id,")


#: The seed's exclusion example (Acropora::Branching and Other).
def seed_exclusions_csv() -> str:
    return seed_csv("ba_id,")
