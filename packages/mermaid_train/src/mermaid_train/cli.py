"""``mermaid-train``: train classifiers from lake snapshots (for now: the end-to-end demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from mermaid_data.cli import user_errors

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def main() -> None:
    """Train pyspacer classifiers from mermaid-data snapshots."""


@app.command()
@user_errors
def demo(
    workdir: Annotated[Path, typer.Option(help="Folder for demo sources and the lake")] = Path("demo-work"),
    scale: Annotated[str, typer.Option(help="Demo size: tiny|small|medium")] = "small",
    seed: Annotated[int, typer.Option(help="Seed of the demo sources")] = 0,
) -> None:
    """Run the whole job on the embedded default: demo sources → ingest → SQL queries."""
    from mermaid_train.demo import run_demo

    run_demo(workdir, scale=scale, seed=seed)


if __name__ == "__main__":  # pragma: no cover
    app()
