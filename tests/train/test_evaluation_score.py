"""Scoring a model on rows it may not know (hand-checked), and the verdict of `compare --on`."""

from __future__ import annotations

import numpy as np
import pytest
from mermaid_train.compare import EvaluationView, verdict
from mermaid_train.evaluation.score import score

MODEL = ["a::", "b::", "c::"]
#: Seven rows: four of classes the model knows (three right), three of two classes it does not know.
PROBA = np.array([
    [0.7, 0.2, 0.1],  # a -> a  right
    [0.2, 0.5, 0.3],  # a -> b  wrong
    [0.1, 0.8, 0.1],  # b -> b  right
    [0.3, 0.3, 0.4],  # c -> c  right
    [0.6, 0.3, 0.1],  # x -> a  unknown class
    [0.1, 0.1, 0.8],  # x -> c  unknown class
    [0.2, 0.7, 0.1],  # y -> b  unknown class
])
TRUTH = ["a::", "a::", "b::", "c::", "x::", "x::", "y::"]
NAMES = {"a::": "Acropora", "b::": "Sand", "c::": "Turf algae", "x::": "Porites", "y::": "Halimeda"}
IMAGES = np.array(["i1", "i1", "i1", "i2", "i2", "i3", "i3"])
SOURCES = np.array(["s1", "s1", "s1", "s1", "s1", "s2", "s2"])


def test_unknown_classes_are_counted_not_dropped() -> None:
    s = score(PROBA, MODEL, TRUTH, names=NAMES, image_ids=IMAGES, source_keys=SOURCES)
    h = s.headline
    assert h["eval_points"] == 7 and "val_points" not in h
    assert h["accuracy"] == pytest.approx(3 / 7)  # every row: an unknown class is always wrong
    assert h["accuracy_known_classes"] == pytest.approx(3 / 4)
    assert h["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1 + 0 + 0) / 5)  # recall of a, b, c, x, y
    assert h["balanced_accuracy_known_classes"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert h["log_loss"] == pytest.approx(-np.mean(np.log([0.7, 0.2, 0.8, 0.4])))  # over the known rows
    assert h["top_3_accuracy"] == pytest.approx(4 / 7)
    assert (h["known_class_points"], h["unknown_class_points"], h["unknown_classes"]) == (4, 3, 2)
    assert (h["model_classes"], h["model_classes_in_truth"]) == (3, 3)
    assert s.unknown.rows() == [("x::", "Porites", 2), ("y::", "Halimeda", 1)]
    per_label = {r["class_key"]: r for r in s.metrics.per_label.iter_rows(named=True)}
    assert per_label["x::"]["support"] == 2 and per_label["x::"]["recall"] == 0 and not per_label["x::"]["in_model"]
    assert per_label["a::"]["in_model"] and per_label["a::"]["name"] == "Acropora"
    assert s.truth.tolist() == [0, 0, 1, 2, 3, 3, 4] and s.predicted.tolist() == [0, 1, 1, 2, 0, 2, 1]
    assert s.confidence.tolist() == pytest.approx([0.7, 0.5, 0.8, 0.4, 0.6, 0.8, 0.7])
    by_source = dict(s.metrics.per_source.select("source", "accuracy").iter_rows())
    assert by_source == {"s1": pytest.approx(3 / 5), "s2": 0.0}


def test_without_unknown_classes_both_views_agree() -> None:
    known = slice(0, 4)
    s = score(PROBA[known], MODEL, TRUTH[known], names=NAMES)
    h = s.headline
    assert h["accuracy"] == h["accuracy_known_classes"] == pytest.approx(0.75)
    assert h["balanced_accuracy"] == h["balanced_accuracy_known_classes"]
    assert h["unknown_class_points"] == 0 and s.unknown.height == 0
    assert s.known is not None and s.known.headline["macro_f1"] == pytest.approx(h["macro_f1"])


def test_no_known_row_still_scores_every_row() -> None:
    s = score(PROBA[4:], MODEL, TRUTH[4:])
    assert s.known is None and s.headline["accuracy"] == 0 and "log_loss" not in s.headline
    assert "accuracy_known_classes" not in s.headline


def _view(label: str, accuracy: float, balanced: float) -> EvaluationView:
    return EvaluationView(label, label, {}, {"accuracy": accuracy, "balanced_accuracy": balanced}, None)


@pytest.mark.parametrize(
    ("scores", "coralnet_best", "balanced_best", "coralnet_text"),
    [
        ([(0.70, 0.60), (0.7071, 0.50)], 1, 0, "2: b is better by CoralNet's rule"),  # 0.7071 >= 1.01 * 0.70
        ([(0.70, 0.60), (0.7069, 0.65)], None, 1, "no model is better by CoralNet's rule"),  # within 1%
        ([(0.80, 0.55), (0.70, 0.55)], 0, None, "1: a is better by CoralNet's rule"),
        ([(0.80, 0.5), (0.70, 0.6), (0.795, 0.7)], None, 2, "no model is better"),  # 0.80 < 1.01 * 0.795
        ([(0.80, 0.5), (0.70, 0.6), (0.79, 0.7)], 0, 2, "1: a is better by CoralNet's rule"),
    ],
)
def test_verdict(scores, coralnet_best, balanced_best, coralnet_text: str) -> None:
    views = [_view(chr(ord("a") + i), acc, bal) for i, (acc, bal) in enumerate(scores)]
    found = verdict(views)
    assert found.coralnet_best == coralnet_best and found.balanced_best == balanced_best
    assert found.coralnet.startswith(coralnet_text), found.coralnet
    assert ("tie" in found.balanced) == (balanced_best is None)


def test_overview_prints_counts_as_whole_numbers() -> None:
    """Bug pinned: `compare --on` printed a model's 0 unknown classes as "0.0000" beside the other's "15"."""
    from mermaid_train.compare import _evaluation_overview

    counts = [{"accuracy": 0.8, "unknown_classes": 0.0, "unknown_class_points": 0.0, "eval_points": 3320.0},
              {"accuracy": 0.7, "unknown_classes": 15.0, "unknown_class_points": 407.0, "eval_points": 3320.0}]
    views = [EvaluationView(n, n, {}, m, None) for n, m in zip("ab", counts)]
    rows = {r[0]: r[1:] for r in _evaluation_overview(views).rows()}
    assert rows["classes the model does not know"] == ("0", "15")
    assert rows["points of classes the model does not know"] == ("0", "407")
    assert rows["points scored"] == ("3,320", "3,320") and rows["accuracy (all rows)"] == ("0.8000", "0.7000")
