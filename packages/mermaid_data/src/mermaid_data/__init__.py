"""mermaid_data: the MERMAID + CoralNet annotation lake."""
