"""Starter spec CSVs computed from the lake, in the formats ``snapshot create`` and ``DatasetOptions`` read.

- ``rollup_spec(lake, "depth 2")``: every benthic attribute rolled up to a level of the tree (``--rollups``);
- ``label_spec(lake, min_annotations=N)``: the classes with enough annotations after a recipe (``--include``);
- ``source_spec(lake, min_images=N)``: the CoralNet sources with enough images (``--coralnet-sources``).

Each returns a frozen ``SpecCsv`` (``frame``, ``description``, ``input_versions``; ``write(path)``). The SQL
is in ``sql/spec/``.
"""

from mermaid_data.specs.labels import label_spec
from mermaid_data.specs.models import LabelSpec, RollupLevel, RollupMode, SpecCsv, SpecKind
from mermaid_data.specs.rollups import rollup_spec
from mermaid_data.specs.sources import source_spec

__all__ = ["LabelSpec", "RollupLevel", "RollupMode", "SpecCsv", "SpecKind", "label_spec", "rollup_spec",
           "source_spec"]
