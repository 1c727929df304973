"""One self-contained HTML page per training or evaluation run: ``write_report(path, metrics, info)``.

The page needs no server and nothing from the network: the plots are PNGs embedded as ``data:`` URIs,
the styles and the one script are inline, and a Content-Security-Policy forbids every other source. It
shows the headline metrics, links to the snapshot, the recipe, the plots (taxonomic confusion matrix, per-class
F1 and support, errors by root group, reliability, epochs) and the tables with names beside the class keys
(per label, per source, errors by root group, the most frequent cross-class errors).

After the page has loaded, its script records on ``<body>`` how many images decoded
(``data-images-loaded`` of ``data-images-total``) and makes the tables sortable by a click on a header.
"""

from __future__ import annotations

import base64
import html
import math
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from mermaid_train.metrics import ValMetrics

#: Plots in page order: file name (as ``ValMetrics.write_plots`` writes them) and caption.
PLOTS = (
    ("confusion_matrix.png", ("Confusion matrix: the classes with most val points in taxonomic order (root group, "
                              "then name), the others folded into \"other\"; each row is the true class's points, "
                              "the diagonal its recall. The full matrix with names is metrics/confusion_matrix.csv.")),
    ("per_class_f1.png", "F1 and val points per class, most val points first (every class: the table below)."),
    ("taxonomy_errors.png", "Per root group of the benthic-attribute tree: how its points were classified."),
    ("reliability.png", "Calibration: accuracy against the top-1 score, in ten bins."),
    ("epochs.png", "Training: ref scores and losses per epoch, the kept epoch marked."),
)
HEADLINE = (
    ("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro F1"),
    ("macro_precision", "macro precision"), ("macro_recall", "macro recall"), ("mcc", "MCC"),
    ("top_3_accuracy", "top-3 accuracy"), ("top_5_accuracy", "top-5 accuracy"), ("log_loss", "log loss"),
    ("ece", "expected calibration error"), ("cover_mean_abs_bias_pp", "cover mean |bias| (pp)"),
    ("cover_rmse_pp", "cover RMSE (pp)"), ("source_accuracy_min", "worst source accuracy"),
    ("source_accuracy_median", "median source accuracy"), ("error_same_root_share", "errors within the root group"),
    ("error_other_root_rate", "points misclassified across root groups"), ("val_points", "points scored"),
    ("val_classes", "classes in the truth"),
)
PER_LABEL = (("name", "name"), ("class_key", "class key"), ("root_group", "root group"), ("support", "points"),
             ("predicted", "predicted"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1"),
             ("cover_bias_pp", "cover bias (pp)"), ("cover_rmse_pp", "cover RMSE (pp)"))
TOP_ERRORS = 25
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")


@dataclass(frozen=True)
class ReportInfo:
    """What a report says besides the metrics: which run, model, snapshot and recipe."""

    title: str
    kind: str = "training"  # "training" or "evaluation": what the scored points were (val set, a snapshot)
    run_name: str | None = None
    model: str | None = None
    snapshot_id: str | None = None
    lake: str | None = None
    recipe: dict[str, str] = field(default_factory=dict)  # option -> value (the run's params)
    facts: tuple[tuple[str, str], ...] = ()  # more rows for the header table (counts, timings, IDs)
    links: tuple[tuple[str, str], ...] = ()  # (text, href), e.g. the MLflow run


def snapshot_links(lake: str | None, snapshot_id: str | None) -> tuple[tuple[str, str], ...]:
    """Links to a snapshot's manifest and rows (``file:`` URIs for a local lake, ``s3://`` as they are)."""
    if not lake or not snapshot_id:
        return ()
    if lake.startswith("s3://"):
        root = f"{lake.rstrip('/')}/snapshots/{snapshot_id}"
    else:
        root = (Path(lake).expanduser().resolve() / "snapshots" / snapshot_id).as_uri()
    return ((f"snapshot {snapshot_id}: manifest.json", f"{root}/manifest.json"),
            (f"snapshot {snapshot_id}: rows.parquet", f"{root}/rows.parquet"))


def write_report(path: str | Path, metrics: ValMetrics, info: ReportInfo, *, plots_dir: str | Path | None = None) -> Path:
    """Write the page to ``path``; the plots are taken from ``plots_dir`` (``ValMetrics.write_plots``) or drawn."""
    path = Path(path)
    if plots_dir is not None and (Path(plots_dir) / PLOTS[0][0]).is_file():
        page = render(metrics, info, _images(Path(plots_dir)))
    else:
        with tempfile.TemporaryDirectory(prefix="mermaid-report-") as tmp:
            metrics.write_plots(tmp)
            page = render(metrics, info, _images(Path(tmp)))
    path.write_text(page, encoding="utf-8")
    return path


def _images(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name, _ in PLOTS if (folder / name).is_file()}


def render(metrics: ValMetrics, info: ReportInfo, images: dict[str, bytes]) -> str:
    """The page's HTML (module docstring)."""
    h = metrics.headline
    scored = "the val set" if info.kind == "training" else "the evaluation snapshot"
    header = [("run", info.run_name), ("model", info.model), ("snapshot", info.snapshot_id), ("lake", info.lake),
              ("scored on", scored), *info.facts,
              ("written", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))]
    parts = [f"<h1>{_e(info.title)}</h1>", _pairs("run", [(k, v) for k, v in header if v]), _links(info),
             "<h2 id='metrics'>Headline metrics</h2>",
             _pairs("headline", [(label, _num(h[key])) for key, label in HEADLINE if key in h and _finite(h[key])])]
    parts.append("<h2 id='plots'>Plots</h2>")
    for name, caption in PLOTS:
        if name in images:
            data = base64.b64encode(images[name]).decode("ascii")
            parts.append(f"<figure><img alt='{_e(name)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{_e(caption)}</figcaption></figure>")
    parts.append(f"<h2 id='per-label'>Per label ({len(metrics.classes)} classes)</h2>")
    columns = [(c, t) for c, t in PER_LABEL if c in metrics.per_label.columns]
    parts.append(_table("per-label", metrics.per_label.select([c for c, _ in columns]), [t for _, t in columns]))
    breakdown = metrics.taxonomy_breakdown()
    if breakdown is not None and breakdown.height:
        parts.append("<h2 id='taxonomy'>Errors by root group</h2>")
        parts.append(_table("taxonomy", breakdown, ["root group", "points", "correct", "wrong growth form",
                                                    "same group, other attribute", "another group"]))
    errors = _top_errors(metrics)
    if errors.height:
        parts.append(f"<h2 id='errors'>Most frequent errors (top {errors.height})</h2>")
        parts.append(_table("errors", errors, ["true name", "true class", "predicted name", "predicted class",
                                               "points", "share of the true class"]))
    if metrics.per_source.height:
        parts.append(f"<h2 id='per-source'>Per source ({metrics.per_source.height})</h2>")
        parts.append(_table("per-source", metrics.per_source, list(metrics.per_source.columns)))
    if info.recipe:
        parts.append("<h2 id='recipe'>Recipe</h2>")
        parts.append(_pairs("recipe", sorted(info.recipe.items())))
    return _PAGE.format(title=_e(info.title), csp=CSP, style=_STYLE, script=_SCRIPT, body="\n".join(parts))


def _top_errors(metrics: ValMetrics, top: int = TOP_ERRORS) -> pl.DataFrame:
    counts = metrics.confusion.copy()
    support = counts.sum(axis=1)
    counts[range(len(counts)), range(len(counts))] = 0
    flat = counts.ravel()
    if not flat.any():
        return pl.DataFrame()
    chosen = [int(i) for i in flat.argsort(kind="stable")[::-1][:top] if flat[i] > 0]
    k = len(metrics.classes)
    t, p = [i // k for i in chosen], [i % k for i in chosen]
    return pl.DataFrame({"true_name": [metrics.class_names[i] for i in t], "true_class": [metrics.classes[i] for i in t],
                         "predicted_name": [metrics.class_names[j] for j in p],
                         "predicted_class": [metrics.classes[j] for j in p], "points": [int(flat[i]) for i in chosen],
                         "share": [float(flat[i] / support[i // k]) for i in chosen]})


# ---- HTML pieces -------------------------------------------------------------------------------------


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _num(value) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 10):
        return f"{int(value):,}"
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.4f}"
    return str(value)


def _pairs(name: str, rows: Iterable[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th scope='row'>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table class='pairs' data-table='{_e(name)}'>{body}</table>"


def _links(info: ReportInfo) -> str:
    links = [*snapshot_links(info.lake, info.snapshot_id), *info.links]
    if not links:
        return ""
    items = "".join(f"<li><a href='{_e(href)}'>{_e(text)}</a></li>" for text, href in links)
    return f"<ul class='links'>{items}</ul>"


def _table(name: str, frame: pl.DataFrame, headers: Sequence[str]) -> str:
    head = "".join(f"<th>{_e(t)}</th>" for t in headers)
    numeric = [frame[c].dtype.is_numeric() for c in frame.columns]
    rows = []
    for row in frame.iter_rows():
        cells = "".join(f"<td class='num' data-v='{_e(v)}'>{_e(_num(v))}</td>" if is_num else f"<td>{_e(v)}</td>"
                        for v, is_num in zip(row, numeric))
        rows.append(f"<tr>{cells}</tr>")
    return (f"<table class='data' data-table='{_e(name)}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left}
table.data th{cursor:pointer;background:#f6f6f6;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.pairs th{font-weight:normal;color:#555}figure{margin:1em 0}img{max-width:100%;height:auto}
figcaption{color:#555;font-size:.9em}ul.links{padding-left:1.2em}
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", String(loaded));
  document.body.setAttribute("data-images-total", String(images.length));
});
document.addEventListener("click", function (event) {
  var th = event.target.closest("table.data th");
  if (!th) { return; }
  var table = th.closest("table"), column = Array.prototype.indexOf.call(th.parentNode.children, th);
  var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
  var down = th.getAttribute("data-sort") !== "down";
  rows.sort(function (a, b) {
    var x = a.cells[column], y = b.cells[column];
    var vx = x.hasAttribute("data-v") ? parseFloat(x.getAttribute("data-v")) : x.textContent;
    var vy = y.hasAttribute("data-v") ? parseFloat(y.getAttribute("data-v")) : y.textContent;
    var order = vx < vy ? -1 : vx > vy ? 1 : 0;
    return down ? -order : order;
  });
  rows.forEach(function (row) { body.appendChild(row); });
  th.setAttribute("data-sort", down ? "down" : "up");
});
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{style}</style></head>
<body>
{body}
<script>{script}</script>
</body></html>
"""


__all__ = ["PLOTS", "ReportInfo", "render", "snapshot_links", "write_report"]
