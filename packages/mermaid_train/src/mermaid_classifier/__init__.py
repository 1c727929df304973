"""The seed documentation's import path, kept working: ``mermaid_classifier.pyspacer.train``."""
