"""mermaid_train: train pyspacer classifiers from lake snapshots."""
