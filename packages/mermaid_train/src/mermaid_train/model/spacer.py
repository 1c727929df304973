"""Training through pyspacer: ``spacer.tasks.train_classifier`` with our ``PackedTrainer``, or the stock one.

What pyspacer needs from the labels
-----------------------------------
``train_classifier(msg)`` runs ``preprocess_labels(msg.labels)``, which for a ``TrainingTaskLabels`` only
asks each set for ``classes_set`` (and ``filter_classes`` when a set holds a class that is not in both
train and ref), ``len()`` (must be > 0), and, for logging and the feature-cache decision,
``label_count`` and ``has_remote_data``. Then it hands the labels to the trainer, loads
``previous_model_locs`` with ``load_classifier``, and stores the model and the ``ValResults`` it gets back
through its own storage.

So the labels we give it are ``PackedLabels``: an ``ImageLabels`` subclass that holds the packed arrays
and the row indices of one set, nothing per annotation in Python (per-class counts from ``np.bincount``,
``filter_classes`` a numpy mask, batches read from the memory map). pyspacer's own preprocessing and
bookkeeping run unchanged.

PackedTrainer
-------------
1. Class weights from the train set's class counts (``model.balance``), if the recipe asks for them.
2. Our training loop (``model.train``: our float32 MLP, or pyspacer's SGD logistic regression), early
   stopping on ref with the best epoch restored.
3. Export (``model.export``): a fitted sklearn ``MLPClassifier`` (or the ``SGDClassifier``); with logit
   adjustment, its output bias shifted by ``tau * log(prior)``; ``CalibratedClassifierCV(cv="prefit")``
   fitted on ref. With ``logit_adjustment="auto"`` every candidate ``tau`` is calibrated and scored on ref
   (the exported, calibrated model is what is chosen).
4. Validation on val; previous models scored on val.

The recipe is pyspacer's by default (preset ``pyspacer``); differences from pyspacer's
``MiniBatchTrainer``, all explicit: mini-batches come from a seeded permutation of the train *points*
per epoch; the weights are initialised from ``RandomState(seed)`` rather than numpy's global RNG (which
``train`` leaves as it found it); features are float32.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import polars as pl
from mermaid_data.progress import Progress, SilentProgress
from spacer import config
from spacer.data_classes import DataLocation, ImageLabels, ValResults
from spacer.exceptions import TrainingLabelsError
from spacer.messages import TrainClassifierMsg, TrainClassifierReturnMsg, TrainingTaskLabels
from spacer.tasks import train_classifier
from spacer.train_classifier import ClassifierTrainer, MiniBatchTrainer

from mermaid_train.errors import TrainConfigError, TrainDataError
from mermaid_train.features.cache import FeatureCache, Pin
from mermaid_train.features.pack import PackedData, advise, gather
from mermaid_train.metrics.classification import balanced_accuracy
from mermaid_train.model import balance, export
from mermaid_train.model.train import EpochRecord, LoopConfig, fit_linear, fit_mlp
from mermaid_train.recipe import Recipe
from mermaid_train.results import TrainOutcome, TrainReport
from mermaid_train.split import SPLITS, Subsample

TRAINERS = ("packed", "minibatch")
CLF_TYPES = tuple(config.CLASSIFIER_TYPES)  # ("LR", "MLP")


# ----------------------------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------------------------


class PackedLabels(ImageLabels):
    """One set (train, ref or val) of a ``PackedData``: row indices, per-class counts, batches from the memmap."""

    def __init__(self, packed: PackedData, indices: np.ndarray) -> None:
        super().__init__()
        self.packed = packed
        self.indices = np.asarray(indices, dtype=np.int64)
        counts = np.bincount(packed.y[self.indices], minlength=len(packed.classes))
        self.label_count_per_class = Counter({packed.classes[i]: int(counts[i]) for i in np.flatnonzero(counts)})
        self._images: int | None = None

    def __len__(self) -> int:
        """Images in the set (like ``ImageLabels``)."""
        if self._images is None:
            self._images = int(self.packed.rows["feature_uri"].gather(self.indices).n_unique()) if len(self.indices) else 0
        return self._images

    def keys(self):
        raise NotImplementedError("PackedLabels has no per-image DataLocations; use indices / load_data_in_batches")

    def filter_classes(self, accepted_classes) -> PackedLabels:
        wanted = set(accepted_classes)
        accepted = np.array([c in wanted for c in self.packed.classes], dtype=bool)
        return PackedLabels(self.packed, self.indices[accepted[self.packed.y[self.indices]]])

    def load_data_in_batches(self, batch_size: int | None = 1000, random_seed: int | None = None):
        """``(X float32 [b, dim], labels [b])`` batches; shuffled by ``default_rng(random_seed)`` if given."""
        order = self.indices
        if random_seed is not None:
            order = np.random.default_rng(random_seed).permutation(order)
        step = batch_size or max(1, len(order))
        names = np.asarray(self.packed.classes, dtype=str)
        for start in range(0, len(order), step):
            chunk = order[start:start + step]
            yield gather(self.packed.x, chunk), names[self.packed.y[chunk]]

    def serialize(self) -> dict:
        return {"packed_dir": str(self.packed.directory), "rows": len(self.indices)}


def packed_task_labels(packed: PackedData, train_indices: np.ndarray | None = None) -> TrainingTaskLabels:
    """The ``TrainingTaskLabels`` pyspacer gets for a packed split (``train_indices``: a subsample of train)."""
    sets = {name: PackedLabels(packed, packed.indices(name)) for name in SPLITS}
    if train_indices is not None:
        sets["train"] = PackedLabels(packed, train_indices)
    return TrainingTaskLabels(**sets)


# ----------------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------------


def recipe_to_json(recipe: Recipe) -> dict:
    """The recipe's fields that differ from the defaults, as JSON values."""
    default = Recipe()
    out = {}
    for f in fields(Recipe):
        value = getattr(recipe, f.name)
        if value != getattr(default, f.name):
            out[f.name] = list(value) if isinstance(value, tuple) else str(value) if isinstance(value, Subsample) \
                else value
    return out


def recipe_from_json(data: dict) -> Recipe:
    data = dict(data)
    if data.get("hidden_layer_sizes") is not None:
        data["hidden_layer_sizes"] = tuple(int(v) for v in data["hidden_layer_sizes"])
    if isinstance(data.get("subsample"), str):
        data["subsample"] = Subsample.parse(data["subsample"])
    return Recipe(**data)


class PackedTrainer(ClassifierTrainer):
    """pyspacer ``ClassifierTrainer`` training from packed arrays with our loop (module docstring).

    Constructor arguments are plain values so ``serialize()`` / ``ClassifierTrainer.deserialize()``
    round-trip. After a call, ``self.report`` (a ``TrainReport``) holds what pyspacer's return message has
    no room for.
    """

    def __init__(self, pack_dir: str = "", recipe: dict | None = None) -> None:
        self.pack_dir = str(pack_dir)
        self.recipe = recipe_from_json(recipe or {})
        self.report: TrainReport | None = None
        self.progress: Progress = SilentProgress()

    def serialize(self) -> dict:
        data = super().serialize()
        if self.pack_dir:
            data["pack_dir"] = self.pack_dir
        recipe = recipe_to_json(self.recipe)
        if recipe:
            data["recipe"] = recipe
        return data

    def _labels(self, labels: TrainingTaskLabels) -> tuple[PackedData, dict[str, np.ndarray]]:
        sets = {name: labels[name] for name in SPLITS}
        if all(isinstance(s, PackedLabels) for s in sets.values()):
            return sets["train"].packed, {name: s.indices for name, s in sets.items()}
        raise TrainDataError(
            "PackedTrainer needs packed labels (mermaid_train.model.spacer.packed_task_labels), got "
            + ", ".join(type(s).__name__ for s in sets.values()),
            where=self.pack_dir or None,
            fix="build the message with packed_task_labels(open_packed(pack_dir)) or use trainer='minibatch'",
        )

    def __call__(self, labels, nbr_epochs, pc_models, clf_type):
        if clf_type not in config.CLASSIFIER_TYPES:
            raise TrainConfigError(f"unknown classifier type {clf_type!r}", fix=f"use one of {', '.join(CLF_TYPES)}")
        t0 = time.time()
        packed, idx = self._labels(labels)
        names = np.asarray(sorted(labels["ref"].classes_set), dtype=str)
        # model class index of every packed row (-1: a class the model does not have)
        to_model = np.full(len(packed.classes), -1, dtype=np.int64)
        to_model[np.searchsorted(np.asarray(packed.classes, dtype=str), names)] = np.arange(len(names))
        y = to_model[packed.y]
        recipe = replace(self.recipe, epochs=int(nbr_epochs), clf_type=clf_type)
        advise(packed.x, "MADV_RANDOM")
        ref_idx = idx["ref"]
        ref_x, ref_y = gather(packed.x, ref_idx), y[ref_idx]
        counts = np.bincount(y[idx["train"]], minlength=len(names))
        weights = None
        if recipe.class_weighting:
            weights = balance.effective_number_weights(counts, beta=recipe.weighting_beta,
                                                       ratio_cap=recipe.weight_ratio_cap).astype(np.float32)
        loop = LoopConfig(epochs=recipe.epochs, batch_size=recipe.step_batch(), seed=recipe.seed,
                          patience=recipe.early_stopping_patience, stop_metric=recipe.early_stopping_metric,
                          blas_threads=recipe.blas_threads)
        hidden, rate = recipe.network(len(idx["train"]))
        if clf_type == "MLP":
            fit = fit_mlp(packed.x, y, idx["train"], ref_x, ref_y, n_classes=len(names), hidden=hidden,
                          learning_rate=rate, alpha=recipe.alpha, config=loop, class_weights=weights,
                          progress=self.progress)
            clf = export.to_mlp_classifier(
                fit.params, names, learning_rate=rate, alpha=recipe.alpha, batch_size=loop.batch_size,
                seed=recipe.seed, optimizer=fit.optimizer, n_iter=len(fit.epochs),
                samples_seen=len(fit.epochs) * len(idx["train"]), loss_curve=[e.train_loss for e in fit.epochs])
        else:
            hidden = ()
            fit = fit_linear(packed.x, y, idx["train"], ref_x, ref_y, n_classes=len(names), config=loop,
                             class_weights=weights, progress=self.progress)
            clf = fit.linear
            clf.classes_ = names  # trained on class indices (sorted like the names): the same columns
        started = time.perf_counter()
        calibrated, tau, search, ref_scores = self._calibrate(clf, ref_x, ref_y, names, counts, weights, recipe)
        calibration_s = time.perf_counter() - started
        del ref_x

        val_idx = idx["val"]
        proba = export.predict_proba(calibrated, packed.x, val_idx)
        gt = y[val_idx]
        if np.any(gt < 0):
            raise TrainDataError("the val set holds a class the model was not trained on",
                                 fix="report this: preprocess_labels should have removed it")
        est = proba.argmax(axis=1)
        acc = float(np.mean(gt == est))
        pc_accs = [float(np.mean(export.predict_proba(m, packed.x, val_idx).argmax(axis=1) == gt))
                   if list(m.classes_) == names.tolist() else _accuracy_by_name(m, packed, val_idx, names[gt])
                   for m in pc_models]
        self.report = TrainReport(
            val_indices=val_idx, val_proba=proba, classes=names.tolist(), epochs=fit.epochs, best_epoch=fit.best_epoch,
            stopped_early=fit.stopped_early, hidden_layer_sizes=tuple(hidden), learning_rate=rate,
            blas_threads=fit.blas_threads, flops=fit.flops, class_weights=weights, logit_adjustment=search, tau=tau,
            ref_accuracy=ref_scores[0], ref_balanced_accuracy=ref_scores[1], calibration_seconds=calibration_s)
        return (
            calibrated,
            ValResults(scores=proba.max(axis=1).tolist(), gt=gt.tolist(), est=est.tolist(), classes=names.tolist()),
            TrainClassifierReturnMsg(acc=acc, pc_accs=pc_accs, ref_accs=[e.ref_accuracy for e in fit.epochs],
                                     runtime=time.time() - t0),
        )

    @staticmethod
    def _calibrate(clf, ref_x, ref_y, names, counts, class_weights, recipe: Recipe):
        """Logit adjustment (fixed, or ``auto``: every candidate calibrated and scored on ref), then calibration.

        With class balance on, the ref points are weighted in the calibration as the balance weights the
        classes (the loss's class weights, times ``prior ** -tau`` for a logit adjustment), normalised to
        a mean of 1: calibrated on the natural class mix, the per-class sigmoids would undo most of the
        balancing. Without either, calibration is pyspacer's (unweighted).
        """
        prior = balance.log_prior(counts)
        base_bias = _output_bias(clf)

        def build(tau: float):
            _set_output_bias(clf, base_bias)
            if tau:
                export.shift_output_bias(clf, tau * prior)
            model = export.calibrate(clf, ref_x, names[ref_y], balance.ref_weights(ref_y, class_weights, prior, tau))
            pred = model.predict_proba(ref_x).argmax(axis=1)
            return model, (float(np.mean(pred == ref_y)), balanced_accuracy(ref_y, pred, len(names)))

        search = None
        if recipe.logit_adjustment == "auto":
            search = balance.choose_tau(lambda t: build(t)[1],
                                        max_accuracy_loss=recipe.logit_adjustment_max_accuracy_loss)
            tau = search.tau
        else:
            tau = float(recipe.logit_adjustment or 0.0)
        model, scores = build(tau)
        return model, tau, search, scores


def _output_bias(clf) -> np.ndarray:
    return (clf.intercepts_[-1] if hasattr(clf, "intercepts_") else clf.intercept_).copy()


def _set_output_bias(clf, bias: np.ndarray) -> None:
    if hasattr(clf, "intercepts_"):
        clf.intercepts_[-1] = bias.copy()
    else:
        clf.intercept_ = bias.copy()


def _accuracy_by_name(model, packed: PackedData, indices: np.ndarray, truth: np.ndarray) -> float:
    """Accuracy of a model with other classes than ours: predicted names against the true names."""
    proba = export.predict_proba(model, packed.x, indices)
    return float(np.mean(np.asarray(model.classes_, dtype=str)[proba.argmax(axis=1)] == truth))


class _TimedImageLabels(ImageLabels):
    """Stock ``ImageLabels`` that notes when each pass over it starts (per-epoch times for the stock path)."""

    def __init__(self, data=None, starts: list | None = None) -> None:
        super().__init__(data)
        self.starts = starts if starts is not None else []

    def load_data_in_batches(self, batch_size=1000, random_seed=None):
        self.starts.append(time.perf_counter())
        yield from super().load_data_in_batches(batch_size=batch_size, random_seed=random_seed)


# ----------------------------------------------------------------------------------------------------
# train()
# ----------------------------------------------------------------------------------------------------


def train(
    packed: PackedData,
    recipe: Recipe | None = None,
    *,
    train_indices: np.ndarray | None = None,
    previous_model_locs=(),
    out_dir: Path,
    progress: Progress | None = None,
) -> TrainOutcome:
    """Train on a packed split through ``spacer.tasks.train_classifier``; store model + valresult in out_dir.

    ``train_indices`` replaces the packed train set (a subsample of it).
    """
    recipe = recipe or Recipe()
    if recipe.trainer not in TRAINERS:
        raise TrainConfigError(f"unknown trainer {recipe.trainer!r}", fix=f"use one of {', '.join(TRAINERS)}")
    if recipe.clf_type not in CLF_TYPES:
        raise TrainConfigError(f"unknown classifier type {recipe.clf_type!r}", fix=f"use one of {', '.join(CLF_TYPES)}")
    if isinstance(recipe.epochs, bool) or not isinstance(recipe.epochs, (int, np.integer)) or recipe.epochs < 1:
        raise TrainConfigError(f"epochs must be a positive integer, got {recipe.epochs!r}", fix="pass e.g. epochs=10")
    progress = progress or SilentProgress()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "classifier.pkl"
    valresult_path = out_dir / "valresult.json"
    rng_state = np.random.get_state()
    started = time.perf_counter()
    try:
        if recipe.trainer == "packed":
            spacer_trainer = PackedTrainer(pack_dir=str(packed.directory), recipe=recipe_to_json(recipe))
            spacer_trainer.progress = progress
            labels = packed_task_labels(packed, train_indices)
        else:
            spacer_trainer = MiniBatchTrainer(batch_size=recipe.step_batch())
            labels, starts = _stock_labels(packed, train_indices)
        msg = TrainClassifierMsg(
            job_token=f"{packed.info.get('snapshot_id', 'snapshot')}:{packed.info.get('split_key', '')}",
            trainer=spacer_trainer,
            nbr_epochs=int(recipe.epochs),
            clf_type=recipe.clf_type,
            labels=labels,
            previous_model_locs=[export.location(loc) for loc in previous_model_locs],
            model_loc=export.location(model_path),
            valresult_loc=export.location(valresult_path),
            feature_cache_dir=TrainClassifierMsg.FeatureCache.DISABLED,
        )
        try:
            if recipe.trainer == "minibatch":
                with progress.task(f"train {recipe.clf_type} with pyspacer's MiniBatchTrainer ({recipe.epochs} epochs)"):
                    result = train_classifier(msg)
            else:
                result = train_classifier(msg)
        except TrainingLabelsError as exc:
            raise TrainDataError(f"pyspacer refused the training sets: {exc}", where=str(packed.directory),
                                 fix="use a bigger snapshot, other ref/val ratios or a lower missing-features "
                                 "share") from exc
    finally:
        np.random.set_state(rng_state)
    runtime = time.perf_counter() - started

    valres = json.loads(valresult_path.read_text())
    classes = [str(c) for c in valres["classes"]]
    gt = np.asarray(valres["gt"], dtype=np.int64)
    est = np.asarray(valres["est"], dtype=np.int64)
    n_train = len(train_indices) if train_indices is not None else len(packed.indices("train"))
    if recipe.trainer == "packed":
        report = spacer_trainer.report
        scores = report.val_proba
        val_rows = packed.rows[report.val_indices]
        epochs = report.epochs
        if recipe.clf_type == "MLP":
            recipe = replace(recipe, hidden_layer_sizes=report.hidden_layer_sizes, learning_rate=report.learning_rate)
    else:
        report = None
        scores = np.asarray(valres["scores"], dtype=np.float64)
        val_rows = packed.rows[packed.indices("val")].filter(pl.col("class_key").is_in(classes))
        seconds = _stock_epoch_seconds(starts, int(recipe.epochs))
        nan = float("nan")
        epochs = tuple(EpochRecord(i, nan, nan, float(a), nan, seconds[i] if i < len(seconds) else nan)
                       for i, a in enumerate(result.ref_accs))
        hidden, rate = recipe.network(n_train)
        recipe = replace(recipe, hidden_layer_sizes=hidden, learning_rate=rate)
    return TrainOutcome(
        model_path=model_path,
        valresult_path=valresult_path,
        classes=classes,
        val_gt=gt,
        val_est=est,
        val_scores=scores,
        epochs=tuple(epochs),
        accuracy=float(result.acc),
        previous_accuracies=[float(a) for a in result.pc_accs],
        runtime_s=runtime,
        trainer=recipe.trainer,
        recipe=recipe,
        val_rows=val_rows,
        report=report,
        details={"spacer_runtime_s": float(result.runtime), "trainer": spacer_trainer.serialize(),
                 "train_points": int(n_train)},
    )


def _stock_labels(packed: PackedData, train_indices: np.ndarray | None):
    """Real ``ImageLabels`` pointing at the cached feature files, in packed order (the stock comparison)."""
    cache_dir = packed.info.get("cache_dir")
    if not cache_dir:
        raise TrainDataError("the packed folder does not say where its feature cache is", where=str(packed.directory),
                             fix="re-pack with this version (delete the packed folder)")
    cache = FeatureCache(Path(cache_dir))
    rows = packed.rows
    if "feature_etag" not in rows.columns:
        raise TrainDataError("the packed folder does not record its feature files' pins", where=str(packed.directory),
                             fix="re-pack with this version (delete the packed folder)")
    if train_indices is not None:
        keep = np.ones(len(packed), dtype=bool)
        keep[packed.indices("train")] = False
        keep[train_indices] = True
        rows = rows.filter(pl.Series(keep))
    # each file where the pack fetched it: cached under its pin (URI, size, ETag; features.cache)
    pins = {uri: None if size is None or etag is None else Pin(int(size), str(etag)) for uri, size, etag in
            rows.select("feature_uri", "feature_size", "feature_etag").unique("feature_uri").iter_rows()}
    return stock_task_labels(rows, lambda uri: DataLocation("filesystem", str(cache.path_for(uri, pins[uri]))))


def stock_task_labels(rows: pl.DataFrame, location_of) -> tuple[TrainingTaskLabels, dict[str, list[float]]]:
    """pyspacer ``TrainingTaskLabels`` of real ``ImageLabels`` (per-image lists of ``(row, col, class_key)``).

    ``rows`` needs ``split``, ``feature_uri``, ``row``, ``col``, ``class_key``; ``location_of(uri)`` gives the
    ``DataLocation`` pyspacer loads each image's features from. Images keep their order of first
    appearance, so the stock trainer's val order is the rows' val order. The per-image lists are built
    with polars ``group_by(...).agg`` (this path is the baseline: pyspacer's ImageLabels is a dict of
    per-image Python lists by design). Also returns the start times of each set's passes (epoch timing).
    """
    sets = {}
    starts: dict[str, list[float]] = {}
    for name in SPLITS:
        grouped = rows.filter(pl.col("split") == name).group_by("feature_uri", maintain_order=True).agg(
            pl.col("row"), pl.col("col"), pl.col("class_key"))
        data = {location_of(uri): list(zip(r, c, k)) for uri, r, c, k in grouped.iter_rows()}
        starts[name] = []
        sets[name] = _TimedImageLabels(data, starts[name])
    return TrainingTaskLabels(**sets), starts


def _stock_epoch_seconds(starts: dict[str, list[float]], epochs: int) -> list[float]:
    """Per-epoch seconds of the stock trainer: time between the starts of its passes over train.

    The last epoch ends when the val pass starts (so it also holds calibration). Empty if pyspacer
    replaced the labels (class filtering) and the passes could not be timed.
    """
    train_starts = starts.get("train", [])
    val_starts = starts.get("val", [])
    if len(train_starts) != epochs or not val_starts:
        return []
    marks = [*train_starts, val_starts[0]]
    return [b - a for a, b in itertools.pairwise(marks)]


__all__ = ["PackedLabels", "PackedTrainer", "packed_task_labels", "recipe_from_json", "recipe_to_json",
           "stock_task_labels", "train"]
