"""Source adapters: read the public inputs (MERMAID API, annotation files, CoralNet buckets)."""
