"""pyspacer training (the seed's package); the code lives in ``mermaid_train``."""
