"""Reports people can read: one self-contained ``report.html`` per training or evaluation run (``html``).

``write_report(path, metrics, ReportInfo(...))`` takes any ``ValMetrics`` (``compute_val_metrics``): the
training runner writes one into every run folder (``runfolder.write_report``); an evaluation writes one with
``ReportInfo(kind="evaluation", ...)``.
"""

from mermaid_train.report.html import PLOTS, ReportInfo, render, snapshot_links, write_report

__all__ = ["PLOTS", "ReportInfo", "render", "snapshot_links", "write_report"]
