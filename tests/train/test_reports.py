"""Reports people can read: the taxonomy-ordered, folded confusion matrix (golden), the errors by root group,
the top-k ranking with names, and report.html rendered in headless Chromium."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from mermaid_train.labels import ClassLabels, TaxonomyNames
from mermaid_train.metrics import Taxonomy, compute_val_metrics
from mermaid_train.metrics.confusion import confusion_table, fold_confusion, taxonomy_order
from mermaid_train.metrics.taxonomy import root_breakdown
from mermaid_train.model import ranking
from mermaid_train.model.train import EpochRecord
from mermaid_train.report import ReportInfo, write_report

from tests.support.chromium import render_dom

# A hand-made case: five classes in two root groups plus Sand; keys in sklearn's (sorted) order.
KEYS = ["acro::br", "ma::", "pori::", "sand::", "turf::"]
NAMES = ["Acropora / Branching", "Macroalgae", "Porites", "Sand", "Turf algae"]
ROOTS = ["Hard coral", "Algae", "Hard coral", "Sand", "Algae"]
#            acro ma pori sand turf   (rows truth, columns prediction)
COUNTS = np.array([[5, 1, 2, 0, 0],   # acro  8
                   [0, 1, 1, 0, 2],   # ma    4
                   [1, 0, 6, 1, 0],   # pori  8
                   [0, 0, 0, 2, 0],   # sand  2
                   [0, 3, 0, 0, 9]])  # turf 12


def test_taxonomy_order_is_root_then_name() -> None:
    assert [KEYS[i] for i in taxonomy_order(KEYS, NAMES, ROOTS)] == ["ma::", "turf::", "acro::br", "pori::", "sand::"]
    assert [KEYS[i] for i in taxonomy_order(KEYS, NAMES, None)] == KEYS  # by name without roots


def test_folded_confusion_golden() -> None:
    """Golden, checked by hand: top 3 by support (turf 12, acro 8, pori 8) in taxonomic order, ma + sand as other."""
    folded = fold_confusion(COUNTS, KEYS, NAMES, ROOTS, top=3)
    assert folded.names == ["Turf algae", "Acropora / Branching", "Porites", "other (2 classes)"]
    assert folded.keys == ["turf::", "acro::br", "pori::", ""]
    assert folded.roots == ["Algae", "Hard coral", "Hard coral", ""]
    assert folded.folded == 2
    assert folded.counts.tolist() == [[9, 0, 0, 3],   # turf -> ma (3) is folded into other
                                      [0, 5, 2, 1],   # acro -> ma
                                      [0, 1, 6, 1],   # pori -> sand
                                      [2, 0, 1, 3]]   # ma + sand: ma->turf 2, ma->pori 1, ma->ma 1 + sand->sand 2
    assert folded.counts.sum() == COUNTS.sum()
    # a tie in support (acro and pori, 8 each) is broken by taxonomic order: Acropora before Porites
    two = fold_confusion(COUNTS, KEYS, NAMES, ROOTS, top=2)
    assert two.keys == ["turf::", "acro::br", ""] and two.counts.sum() == COUNTS.sum()
    # nothing to fold: every class, in taxonomic order
    assert fold_confusion(COUNTS, KEYS, NAMES, ROOTS, top=10).names == [NAMES[i] for i in (1, 4, 0, 2, 3)]


def test_full_confusion_csv_has_names_in_taxonomic_order() -> None:
    table = confusion_table(COUNTS, KEYS, NAMES, ROOTS)
    assert table.columns == ["true_root", "true_class", "true_name", "Macroalgae", "Turf algae",
                             "Acropora / Branching", "Porites", "Sand"]
    assert table["true_class"].to_list() == ["ma::", "turf::", "acro::br", "pori::", "sand::"]
    assert table.row(0) == ("Algae", "ma::", "Macroalgae", 1, 2, 0, 1, 0)
    # two classes with one name: the key tells the columns apart
    twin = confusion_table(np.eye(2, dtype=int), ["a::", "b::"], ["Same", "Same"], None)
    assert twin.columns[3:] == ["Same [a::]", "Same [b::]"]


def test_errors_by_root_group_by_hand() -> None:
    counts = np.array([[3, 1, 1], [2, 4, 0], [0, 1, 5]])  # acro::br, acro::tab (Hard coral), turf (Algae)
    table = root_breakdown(counts, ["acro::br", "acro::tab", "turf::"], ["Hard coral", "Hard coral", "Algae"])
    assert table.rows() == [("Hard coral", 11, 7, 3, 0, 1), ("Algae", 6, 5, 0, 0, 1)]
    folded = root_breakdown(COUNTS, KEYS, ROOTS)
    assert folded.rows() == [("Algae", 16, 10, 0, 5, 1), ("Hard coral", 16, 11, 0, 3, 2), ("Sand", 2, 2, 0, 0, 0)]


def test_top_k_ranks_ties_by_class_index() -> None:
    proba = np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.1, 0.1, 0.8]])
    index, scores = ranking.top_k(proba, 2)
    assert index.tolist() == [[1, 2], [0, 1], [2, 0]]
    assert scores.tolist() == [[0.5, 0.3], [0.4, 0.4], [0.8, 0.1]]
    assert ranking.top_k(proba, 9)[0].shape == (3, 3)  # capped at the class count
    labels = ClassLabels.from_frame(pl.DataFrame({"class_key": ["a::", "b::x", "c::"],
                                                  "benthic_attribute_name": ["A", "B", None],
                                                  "growth_form_name": [None, "X", None]})).arrays()
    columns = ranking.prediction_columns(proba, labels, k=2, min_confidence=0.5)
    assert columns["low_confidence"].tolist() == [False, True, False]
    assert columns["predicted_class_key"].tolist() == ["b::x", None, "c::"]
    assert columns["predicted_name"].tolist() == ["B / X", None, "c::"]  # no name: the key
    assert columns["top1_class_key"].tolist() == ["b::x", "a::", "c::"]  # the ranking itself is kept
    assert columns["top1_growth_form_id"].tolist() == ["x", "", ""]
    assert columns["top2_benthic_attribute_name"].tolist() == [None, "B", "A"]


def test_features_cast_to_float32_from_anything() -> None:
    x64 = np.arange(6, dtype=np.float64).reshape(2, 3)
    for data in (x64, x64.astype(np.float32), x64.tolist(), pl.DataFrame(x64).to_pandas()):
        out = ranking.as_features(data, 3)
        assert out.dtype == np.float32 and out.flags.c_contiguous and out.tolist() == x64.tolist()
    assert ranking.as_features(np.ones(3), 3).shape == (1, 3)
    with pytest.raises(ValueError, match=r"shape \[n, 4\]"):
        ranking.as_features(x64, 4)


def test_names_from_the_bundled_taxonomy() -> None:
    names = TaxonomyNames.bundled()
    ba, name = next(iter(names.benthic_attributes.items()))
    gf, gf_name = next(iter(names.growth_forms.items()))
    labels = names.labels([f"{ba}::{gf}", f"{ba}::", "not-a-uuid::"])
    assert labels.names == [f"{name} / {gf_name}", name, "not-a-uuid::"]
    assert labels.ba_names[2] is None and labels.gf_ids == (gf, "", "")


# --------------------------------------------------------------------------------------------------
# report.html in headless Chromium
# --------------------------------------------------------------------------------------------------


def _metrics():
    taxonomy = Taxonomy(pl.DataFrame({"benthic_attribute_id": ["acro", "ma", "pori", "sand", "turf"],
                                      "root_id": ["hc", "alg", "hc", "sand", "alg"],
                                      "root_name": ["Hard coral", "Algae", "Hard coral", "Sand", "Algae"]}))
    truth, predicted = np.nonzero(COUNTS)
    reps = COUNTS[truth, predicted]
    y_true, y_pred = np.repeat(truth, reps), np.repeat(predicted, reps)
    rng = np.random.default_rng(0)
    proba = rng.random((len(y_true), len(KEYS))) * 0.2
    proba[np.arange(len(y_true)), y_pred] += 1
    proba /= proba.sum(axis=1, keepdims=True)
    images = np.asarray([f"i{i % 4}" for i in range(len(y_true))])
    epochs = [EpochRecord(i, 1.0 - a, 1.1 - a, a, a / 2, 0.1) for i, a in enumerate([0.5, 0.6, 0.7])]
    return compute_val_metrics(y_true, y_pred, KEYS, scores=proba, image_ids=images, source_keys=images,
                               class_names=NAMES, taxonomy=taxonomy, epochs=epochs)


def _body(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag))


def test_report_renders_in_chromium_with_images_and_names(tmp_path: Path) -> None:
    metrics = _metrics()
    page = write_report(tmp_path / "report.html", metrics, ReportInfo(
        title="hand-made: evaluation report", kind="evaluation", model="models:/reef/3", snapshot_id="snap-0123",
        lake=str(tmp_path / "lake"), recipe={"training.epochs": "3"}))
    text = page.read_text(encoding="utf-8")
    sources = re.findall(r"<img[^>]*\ssrc='([^']*)'", text)
    assert len(sources) == 5 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<(link|script)[^>]*\s(src|href)=", text)  # nothing fetched from anywhere

    dom = render_dom(page)
    body = _body(dom)
    assert body["data-images-total"] == "5" and body["data-images-loaded"] == "5", body
    per_label = re.search(r"<table class=\"data\" data-table=\"per-label\">(.*?)</table>", dom, re.DOTALL).group(1)
    for key, name in zip(KEYS, NAMES):  # each class's row holds its name beside its key
        assert re.search(rf"<tr><td>{re.escape(name)}</td><td>{re.escape(key)}</td>", per_label), name
    assert "Hard coral" in per_label and "snap-0123" in dom and "models:/reef/3" in dom
    assert re.search(r"<a href=\"file:///[^\"]*/snapshots/snap-0123/manifest.json\"", dom)
    taxonomy = re.search(r"data-table=\"taxonomy\">(.*?)</table>", dom, re.DOTALL).group(1)
    assert "Algae" in taxonomy and "Sand" in taxonomy


def test_report_check_fails_when_an_image_is_not_embedded(tmp_path: Path) -> None:
    """Control: an image from a file (not a data: URI) is blocked by the page's policy and counted as not loaded."""
    page = write_report(tmp_path / "report.html", _metrics(), ReportInfo(title="control"))
    png = tmp_path / "plot.png"  # a valid PNG: only the page's policy can keep it from loading
    png.write_bytes(base64.b64decode(re.search(rb"base64,([^']*)'", page.read_bytes()).group(1)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text(encoding="utf-8")
    first = re.search(r"src='(data:image/png;base64,[^']*)'", text).group(1)
    page.write_text(text.replace(first, png.resolve().as_uri(), 1), encoding="utf-8")
    body = _body(render_dom(page))
    assert body["data-images-total"] == "5" and body["data-images-loaded"] == "4", body
