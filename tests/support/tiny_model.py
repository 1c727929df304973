"""A tiny classifier whose calibrated scores are known by hand, its feature file, and its expected top-k rows.

Three classes named in the bundled MERMAID taxonomy, 2-d features, and what pyspacer stores: a
``CalibratedClassifierCV`` (sigmoid, prefit) over a ``LogisticRegression``. The decision values of a
one-hot vector are one coefficient column, set to ``logit(p)`` for the probabilities ``p`` written below;
the calibration is ``expit`` (a = -1, b = 0) and the ``p`` of a point sum to 1, so the calibrated scores
are ``p`` itself (the zero vector: 0.5 each, normalised to 1/3).

=========  =====  =================================================  ==================
point      x      scores (Acropora/Branching, Porites/Massive, Sand)  top 2
=========  =====  =================================================  ==================
(10, 20)   [1, 0]  0.55, 0.25, 0.20                                   Acropora, Porites
(30, 40)   [0, 1]  0.10, 0.60, 0.30                                   Porites, Sand
(50, 60)   [0, 0]  1/3, 1/3, 1/3 (a tie: the lower class index first)  Acropora, Porites
=========  =====  =================================================  ==================
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

ACROPORA = "050c0689-0b01-4a6c-afbf-a5d3ca39c310"
PORITES = "2b55697f-f26e-433e-9070-f1fe9748bf7b"
SAND = "b76bca12-884b-4404-bb9f-97d505b0fe58"
BRANCHING = "cf2deca6-53b8-4096-916f-32c2c71d14bf"
MASSIVE = "888609b5-b58a-4d57-addc-a6935bba284b"

KEYS = (f"{ACROPORA}::{BRANCHING}", f"{PORITES}::{MASSIVE}", f"{SAND}::")  # sorted, as sklearn keeps classes
ROWS = np.array([10, 30, 50])
COLS = np.array([20, 40, 60])
X = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
SCORES = np.array([[0.55, 0.25, 0.20], [0.10, 0.60, 0.30], [1 / 3, 1 / 3, 1 / 3]])

_A = (KEYS[0], ACROPORA, "Acropora", BRANCHING, "Branching", "Acropora / Branching")
_P = (KEYS[1], PORITES, "Porites", MASSIVE, "Massive", "Porites / Massive")
_S = (KEYS[2], SAND, "Sand", "", None, "Sand")
_FIELDS = ("class_key", "benthic_attribute_id", "benthic_attribute_name", "growth_form_id", "growth_form_name", "name")


def expected_rows(min_confidence: float | None = 0.5) -> list[dict]:
    """The hand-checked prediction columns of the three points at top 2 (module docstring)."""
    ranked = [((_A, 0.55), (_P, 0.25)), ((_P, 0.60), (_S, 0.30)), ((_A, 1 / 3), (_P, 1 / 3))]
    rows = []
    for ranks in ranked:
        confidence = ranks[0][1]
        low = min_confidence is not None and confidence < min_confidence
        row = {"predicted_class_key": None if low else ranks[0][0][0],
               "predicted_name": None if low else ranks[0][0][5], "confidence": confidence, "low_confidence": low}
        for r, (label, score) in enumerate(ranks, start=1):
            row |= {f"top{r}_{field}": value for field, value in zip(_FIELDS, label)}
            row[f"top{r}_score"] = score
        rows.append(row)
    return rows


def classifier():
    """The fitted pyspacer-shaped classifier of the module docstring (coefficients set, not learned)."""
    from sklearn.calibration import CalibratedClassifierCV, _CalibratedClassifier, _SigmoidCalibration
    from sklearn.linear_model import LogisticRegression

    base = LogisticRegression()
    base.classes_ = np.array(KEYS, dtype=object)
    p = SCORES[:2].T  # class c: [p(c | x=[1,0]), p(c | x=[0,1])]
    base.coef_ = np.log(p / (1 - p))  # decision value = logit(p)
    base.intercept_ = np.zeros(len(KEYS))
    base.n_features_in_ = X.shape[1]
    sigmoid = _SigmoidCalibration()
    sigmoid.a_, sigmoid.b_ = -1.0, 0.0  # expit(logit(p)) = p; the scores sum to 1, so normalising keeps them
    model = CalibratedClassifierCV(base, method="sigmoid", cv="prefit")
    model.calibrated_classifiers_ = [_CalibratedClassifier(base, [sigmoid] * len(KEYS), method="sigmoid",
                                                           classes=base.classes_)]
    model.classes_ = base.classes_
    model.n_features_in_ = X.shape[1]
    return model


def write(folder: Path) -> tuple[Path, Path]:
    """``(classifier.pkl, i1.featurevector)`` written into ``folder``: the model and its three points."""
    from mermaid_data.demo.features import write_feature_file

    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "classifier.pkl"
    model_path.write_bytes(pickle.dumps(classifier()))
    features = folder / "i1.featurevector"
    write_feature_file(features, ROWS, COLS, X)
    return model_path, features
