"""Training recipes: the two named presets and the fully resolved ``Recipe`` a run trains with.

``TrainingOptions`` fields left as ``None`` take their preset's value; a field given explicitly wins.
The resolved recipe (every field a plain value) is what the trainer gets, what is logged as
``training.*`` params, and what ``recipe_id`` hashes, so two runs with the same ID trained the same way
on the same snapshot.

``pyspacer`` (the default)
    pyspacer's ``MiniBatchTrainer`` recipe (2023): MLP ``(200, 100)`` at learning rate 1e-4 when the train
    set has at least 50,000 points, else ``(100,)`` at 1e-3; mini-batches of 200; L2 1e-4; 10 epochs; the
    last epoch kept; no class balancing. For parity with pyspacer and CoralNet's classifiers.
``upstream``
    pyspacer's current recipe (its torch MLP, 2025): ``(500, 300, 100)`` at 1e-4, loss weighted by the
    effective number of samples (beta 0.9999, max/min weight ratio capped at 50), up to 40 epochs with early
    stopping (patience 3) and the best epoch restored; mini-batches of 512. It stops on the ref set's
    balanced accuracy, where upstream stops on its loss: with weights on, stopping on the loss ends
    before the rare classes are learnt (measured on the bench: 2-4 points of balanced accuracy and 2 of
    accuracy lower; docs/training.md). ``early_stopping_metric='ref_loss'`` gives upstream's rule.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any

from mermaid_train.split.subsample import Subsample

#: pyspacer's size rule: a train set at least this big gets the larger network.
MLP_LARGE_DATA_THRESHOLD = 50_000
SKLEARN_BATCH = 200  # MLPClassifier's batch_size="auto" for more than 200 points
PYSPACER_BATCH = 5000  # pyspacer's TRAINING_BATCH_LABEL_COUNT: rows per partial_fit (LR, stock trainer)


class Preset(StrEnum):
    PYSPACER = "pyspacer"
    UPSTREAM = "upstream"


class ClassWeighting(StrEnum):
    EFFECTIVE_NUMBER = "effective_number"


@dataclass(frozen=True)
class Recipe:
    """Every training choice, resolved (module docstring). ``None`` network fields = pyspacer's size rule."""

    preset: str = Preset.PYSPACER.value
    epochs: int = 10
    seed: int = 0
    split: str = "images"
    clf_type: str = "MLP"
    trainer: str = "packed"
    hidden_layer_sizes: tuple[int, ...] | None = None
    learning_rate: float | None = None
    alpha: float = 1e-4
    batch_size: int | None = None  # None: 200 points per step (MLP), 5000 rows per partial_fit (LR, stock)
    early_stopping_patience: int | None = None
    early_stopping_metric: str = "ref_loss"
    class_weighting: str | None = None
    weighting_beta: float = 0.9999
    weight_ratio_cap: float | None = None
    logit_adjustment: str | float | None = None  # None, "auto" (tau chosen on ref) or a fixed tau
    logit_adjustment_max_accuracy_loss: float = 0.03
    subsample: Subsample | None = None
    pack_dtype: str = "float32"
    blas_threads: int | None = None  # None: chosen at the start of training (model.blas)

    def network(self, n_train: int) -> tuple[tuple[int, ...], float]:
        """``(hidden_layer_sizes, learning_rate)`` for a train set of ``n_train`` points."""
        if self.hidden_layer_sizes is None:
            hidden, rate = ((200, 100), 1e-4) if n_train >= MLP_LARGE_DATA_THRESHOLD else ((100,), 1e-3)
        else:
            hidden, rate = self.hidden_layer_sizes, 1e-3  # sklearn's default rate
        return tuple(hidden), float(self.learning_rate if self.learning_rate is not None else rate)

    def step_batch(self) -> int:
        """Points per optimizer step (MLP) or rows per ``partial_fit`` (LR, stock trainer)."""
        if self.batch_size:
            return int(self.batch_size)
        return SKLEARN_BATCH if self.clf_type == "MLP" and self.trainer == "packed" else PYSPACER_BATCH

    def params(self) -> dict[str, Any]:
        """``training.<field>`` -> a loggable value (tuples joined with commas, None as '')."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = ",".join(str(v) for v in value)
            elif isinstance(value, Subsample):
                value = str(value)
            out[f"training.{f.name}"] = "" if value is None else value
        return out

    def recipe_id(self, snapshot_id: str) -> str:
        """``recipe-<16 hex>``: SHA-256 of the snapshot ID and every field (the run's identity)."""
        payload = json.dumps({"snapshot_id": snapshot_id, **{k: str(v) for k, v in self.params().items()}},
                             sort_keys=True)
        return "recipe-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


PRESETS: dict[str, Recipe] = {
    Preset.PYSPACER: Recipe(),
    Preset.UPSTREAM: Recipe(
        preset=Preset.UPSTREAM.value,
        epochs=40,
        hidden_layer_sizes=(500, 300, 100),
        learning_rate=1e-4,
        batch_size=512,
        early_stopping_patience=3,
        early_stopping_metric="ref_balanced_accuracy",
        class_weighting=ClassWeighting.EFFECTIVE_NUMBER.value,
        weight_ratio_cap=50.0,
    ),
}


def preset(name: str) -> Recipe:
    return PRESETS[Preset(name)]


def with_overrides(base: Recipe, overrides: dict[str, Any]) -> Recipe:
    """``base`` with every non-None override applied (the preset keeps what is not given)."""
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def as_dict(recipe: Recipe) -> dict[str, Any]:
    return asdict(recipe)
