"""Val metrics against hand-computed values and scikit-learn; the CSV and PNG outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from mermaid_train.metrics import Taxonomy, compute_val_metrics
from mermaid_train.model.train import EpochRecord
from sklearn.metrics import (
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    top_k_accuracy_score,
)

CLASSES = ["a::", "b::", "c::"]


def _epochs(ref_accs, seconds):
    return [EpochRecord(i, 1.0 - a, 1.1 - a, a, a / 2, s) for i, (a, s) in enumerate(zip(ref_accs, seconds))]


def small():
    """6 points, 2 images, 2 sources; hand-checkable."""
    y_true = [0, 0, 1, 1, 2, 0]
    y_pred = [0, 1, 1, 1, 2, 2]
    images = ["i1", "i1", "i1", "i2", "i2", "i2"]
    sources = ["coralnet/1", "coralnet/1", "coralnet/1", "mermaid", "mermaid", "mermaid"]
    return y_true, y_pred, images, sources


def test_headline_by_hand() -> None:
    y_true, y_pred, images, sources = small()
    m = compute_val_metrics(y_true, y_pred, CLASSES, image_ids=images, source_keys=sources,
                            epochs=_epochs([0.5, 0.6], [1.0, 2.0]))
    h = m.headline
    assert h["accuracy"] == pytest.approx(4 / 6)
    # recalls: a 1/3, b 2/2, c 1/1
    assert h["balanced_accuracy"] == pytest.approx((1 / 3 + 1 + 1) / 3)
    assert h["source_accuracy_min"] == pytest.approx(2 / 3)
    assert h["source_accuracy_max"] == pytest.approx(2 / 3)
    assert h["val_images"] == 2 and h["val_sources"] == 2
    assert h["final_ref_accuracy"] == 0.6
    assert h["train_epochs_seconds"] == 3.0
    assert m.confusion.tolist() == [[1, 1, 1], [0, 2, 0], [0, 0, 1]]
    # image i1: true a,a,b pred a,b,b -> shares a 2/3 vs 1/3, b 1/3 vs 2/3, c 0 vs 0
    # image i2: true b,c,a pred b,c,c -> a 1/3 vs 0, b 1/3 vs 1/3, c 1/3 vs 2/3
    e = 100 * np.array([[-1 / 3, 1 / 3, 0], [-1 / 3, 0, 1 / 3]])
    assert h["cover_mean_abs_bias_pp"] == pytest.approx(np.abs(e.mean(axis=0)).mean())
    assert h["cover_rmse_pp"] == pytest.approx(math.sqrt((e**2).mean()))
    img = m.per_image.sort("image_id")
    assert img["cover_l1_pp"].to_list() == pytest.approx([100 / 3, 100 / 3])
    assert img["source"].to_list() == ["coralnet/1", "mermaid"]
    assert m.epochs["epoch"].to_list() == [0, 1]


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_against_sklearn_random() -> None:
    rng = np.random.default_rng(3)
    k, n = 7, 2000
    y_true = rng.integers(0, k, n)
    y_true[y_true == 6] = 5  # class 6 absent from truth
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y_true] += 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_pred = proba.argmax(axis=1)
    m = compute_val_metrics(y_true, y_pred, [f"c{i}::" for i in range(k)], scores=proba,
                            image_ids=rng.integers(0, 80, n).astype(str), source_keys=rng.integers(0, 5, n).astype(str))
    h = m.headline
    assert h["accuracy"] == pytest.approx((y_true == y_pred).mean())
    assert h["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert h["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert h["macro_precision"] == pytest.approx(precision_score(y_true, y_pred, average="macro", zero_division=0))
    assert h["macro_recall"] == pytest.approx(recall_score(y_true, y_pred, average="macro", zero_division=0))
    for top in (1, 3, 5):
        expected = top_k_accuracy_score(y_true, proba, k=top, labels=np.arange(k))
        assert h[f"top_{top}_accuracy"] == pytest.approx(expected)
    # ECE by a direct (looped) reference implementation
    conf = proba.max(axis=1)
    correct = y_true == y_pred
    bins = np.minimum(np.ceil(conf * 10).astype(int) - 1, 9).clip(0)
    ece = sum(abs(correct[bins == b].mean() - conf[bins == b].mean()) * (bins == b).sum()
              for b in range(10) if (bins == b).any()) / n
    assert h["ece"] == pytest.approx(ece)
    assert m.calibration["count"].sum() == n
    assert m.per_label.height == k
    assert m.per_source["annotations"].sum() == n


def test_top_k_only_when_scores_allow() -> None:
    y_true, y_pred, _images, _sources = small()
    only_conf = compute_val_metrics(y_true, y_pred, CLASSES, scores=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    assert "top_3_accuracy" not in only_conf.headline
    assert only_conf.headline["top_1_accuracy"] == only_conf.headline["accuracy"]
    assert "ece" in only_conf.headline
    proba = np.full((6, 3), 1 / 3)
    three = compute_val_metrics(y_true, y_pred, CLASSES, scores=proba)
    assert "top_3_accuracy" not in three.headline  # k=3 classes: top-3 is trivially 1
    assert "top_1_accuracy" in three.headline
    none = compute_val_metrics(y_true, y_pred, CLASSES)
    assert "ece" not in none.headline and none.calibration.height == 0


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        compute_val_metrics([], [], CLASSES)
    with pytest.raises(ValueError):
        compute_val_metrics([0, 1], [0], CLASSES)
    with pytest.raises(ValueError):
        compute_val_metrics([0, 3], [0, 1], CLASSES)
    with pytest.raises(ValueError):
        compute_val_metrics([0, 1], [0, 1], CLASSES, scores=np.ones((2, 2)))


def test_files_written(tmp_path: Path) -> None:
    y_true, y_pred, images, sources = small()
    proba = np.eye(3)[y_pred] * 0.7 + 0.1
    m = compute_val_metrics(y_true, y_pred, CLASSES, scores=proba, image_ids=images, source_keys=sources,
                            class_names=["Alpha", "Beta", "Gamma"], epochs=_epochs([0.4, 0.5], [0.1, 0.1]))
    files = m.write(tmp_path)
    for name in ("metrics.json", "per_label.csv", "confusion_matrix.csv", "per_source.csv", "per_image_cover.csv",
                 "calibration.csv", "epochs.csv", "confusion_matrix.png", "reliability.png", "epochs.png",
                 "per_class_f1.png"):
        assert files[name].is_file() and files[name].stat().st_size > 0, name
    assert files["confusion_matrix.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(files["metrics.json"].read_text())["accuracy"] == pytest.approx(4 / 6)
    cm = pl.read_csv(files["confusion_matrix.csv"])
    assert cm.columns == ["true_root", "true_class", "true_name", "Alpha", "Beta", "Gamma"]  # names beside keys
    assert cm["true_class"].to_list() == CLASSES and cm.select("Alpha", "Beta", "Gamma").rows() == [
        (1, 1, 1), (0, 2, 0), (0, 0, 1)]
    per_label = pl.read_csv(files["per_label.csv"])
    assert set(per_label["name"]) == {"Alpha", "Beta", "Gamma"}


def test_at_scale_against_sklearn() -> None:
    """200k points, 40 classes, 8k images (timings belong in bench/, not here): MCC and log loss as sklearn's."""
    from sklearn.metrics import log_loss, matthews_corrcoef

    rng = np.random.default_rng(0)
    n, k = 200_000, 40
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, k, n))
    proba = rng.random((n, k))
    proba /= proba.sum(axis=1, keepdims=True)
    m = compute_val_metrics(y_true, y_pred, [f"c{i}" for i in range(k)], scores=proba,
                            image_ids=rng.integers(0, 8000, n).astype(str), source_keys=rng.integers(0, 300, n).astype(str))
    assert m.headline["val_images"] == 8000
    assert m.headline["mcc"] == pytest.approx(matthews_corrcoef(y_true, y_pred), abs=1e-12)
    assert m.headline["log_loss"] == pytest.approx(log_loss(y_true, proba.astype(np.float64), labels=np.arange(k)))


def test_taxonomic_error_split_by_hand() -> None:
    """Golden case: errors within the attribute, within the root group, and across groups."""
    taxonomy = Taxonomy(pl.DataFrame({
        "benthic_attribute_id": ["acro", "pori", "hc", "turf", "ma"],
        "root_id": ["hc", "hc", "hc", "algae", "algae"],
        "root_name": ["Hard coral"] * 3 + ["Algae"] * 2}))
    classes = ["acro::branching", "acro::table", "pori::", "turf::", "unknown::"]
    # truth -> prediction: right; GF only (acro); same root (acro -> pori); across (pori -> turf); the BA
    # missing from the tree is its own group (turf -> unknown: across)
    y_true = np.array([0, 0, 1, 2, 3, 3])
    y_pred = np.array([0, 1, 2, 3, 4, 3])
    m = compute_val_metrics(y_true, y_pred, classes, taxonomy=taxonomy)
    h = m.headline
    assert h["errors"] == 4
    assert h["error_same_ba_share"] == pytest.approx(1 / 4)
    assert h["error_same_root_share"] == pytest.approx(2 / 4)
    assert h["error_other_root_share"] == pytest.approx(2 / 4)
    assert h["error_other_root_rate"] == pytest.approx(2 / 6)
    assert m.root_confusion.rows() == [("Hard coral", "Hard coral", 2), ("Algae", "unknown", 1),
                                       ("Hard coral", "Algae", 1)]


def test_taxonomy_roots_from_a_lake(train_lake) -> None:
    """Bug pinned: roots not at the top of the parent chain (the lake's real tree, several levels deep)."""
    taxonomy = Taxonomy.from_lake(train_lake.lake)
    tree = train_lake.lake.sql("SELECT id, parent_id FROM benthic_attributes")
    parent = dict(tree.iter_rows())
    for ba, root in taxonomy.roots.select("benthic_attribute_id", "root_id").head(200).iter_rows():
        node = ba
        while parent.get(node):
            node = parent[node]
        assert root == node, ba
    assert taxonomy.roots.height == tree.height
