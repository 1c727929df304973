"""Offline demo sources on the bundled real MERMAID taxonomy: a MERMAID parquet, CoralNet CSVs, pyspacer features and API pages.

Usage::

    from mermaid_data.demo import generate_demo_sources, SCALES
    summary = generate_demo_sources(Path("demo"), scale="small", seed=0)
"""

from mermaid_data.demo.generate import SCALES, DemoSummary, generate_demo_sources, write_api_pages

__all__ = ["SCALES", "DemoSummary", "generate_demo_sources", "write_api_pages"]
