"""Train with pyspacer: ``spacer.tasks.train_classifier`` with our ``PackedTrainer``, or the stock trainer.

What pyspacer needs from the labels
-----------------------------------
``train_classifier(msg)`` runs ``preprocess_labels(msg.labels)``, which for a ``TrainingTaskLabels`` only
asks each set for ``classes_set`` (and ``filter_classes`` when a set holds a class that is not in both
train and ref), ``len()`` (must be > 0), and, for logging and the feature-cache decision,
``label_count`` and ``has_remote_data``. Then it hands the labels to the trainer, loads
``previous_model_locs`` with ``load_classifier``, and stores the model and the ``ValResults`` it gets back
through its own storage.

So the labels we give it are ``PackedLabels``: an ``ImageLabels`` subclass that holds the packed arrays
and the row indices of one set, nothing per annotation in Python. ``label_count_per_class`` is a
``Counter`` built from ``np.bincount`` over the set's class indices (one entry per class), ``len()`` is the
set's number of images (counted by polars), ``filter_classes`` is a numpy mask, and
``load_data_in_batches`` reads float32 batches straight from the memory-mapped ``X.f32``. Building the
three sets costs milliseconds at any size; pyspacer's own preprocessing and bookkeeping still run
unchanged. (A message holding packed labels serializes to a reference to the packed folder, not to
annotation lists.)

PackedTrainer recipe (same as pyspacer's ``MiniBatchTrainer``)
---------------------------------------------------------------
- MLP: ``MLPClassifier(hidden_layer_sizes=(200, 100), learning_rate_init=1e-4)`` when the train set has
  at least ``mlp_large_data_threshold`` (50,000) labels, else ``(100,)`` / ``1e-3``, unless given;
  LR: ``SGDClassifier(loss="log_loss", average=True)``.
- ``partial_fit`` on mini-batches of ``batch_size`` (``config.TRAINING_BATCH_LABEL_COUNT``) labels for
  ``nbr_epochs`` epochs; accuracy on the ref set after every epoch; ``CalibratedClassifierCV(cv="prefit")``
  fitted on ref; validation on val; previous models scored on val.

The MLP is sklearn's ``MLPClassifier`` throughout; only its Adam step runs in place (``InPlaceAdam``:
bit-for-bit the same weights, about a quarter less time). Other differences, all explicit:

- batches are drawn from a seeded permutation of the train *points* per epoch
  (``numpy.random.default_rng([seed, epoch])``) rather than of images;
- the MLP gets ``random_state=RandomState(seed)`` (pyspacer's uses numpy's global RNG, which its batch
  loader reseeds with the epoch number); nothing on this path touches numpy's global RNG, and ``train``
  restores the global RNG state after either trainer;
- features are float32 (sklearn's MLP then computes in float32; the stored model is an ordinary sklearn
  ``CalibratedClassifierCV`` that pyspacer's ``load_classifier`` loads and that predicts float64
  features as well);
- BLAS runs on ``blas_threads`` (default 1) threads while training: the MLP's GEMMs are small
  (200 x 1280 x 200), and OpenBLAS's two spinning threads lose badly to one thread whenever the cores
  are shared (measured on this 2-core machine under load: 0.12 ms per point with one thread in float32
  vs 1.3 ms with OpenBLAS's default two threads in float64). ``0`` leaves the BLAS thread count alone.
"""

from __future__ import annotations

import inspect
import itertools
import json
import mmap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from mermaid_data.progress import Progress, SilentProgress
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import SGDClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer
from spacer import config
from spacer.data_classes import DataLocation, ImageLabels, ValResults
from spacer.exceptions import TrainingLabelsError
from spacer.messages import TrainClassifierMsg, TrainClassifierReturnMsg, TrainingTaskLabels
from spacer.tasks import train_classifier
from spacer.train_classifier import ClassifierTrainer, MiniBatchTrainer
from threadpoolctl import threadpool_limits

from mermaid_train.errors import TrainConfigError, TrainDataError
from mermaid_train.features import FeatureCache, PackedData
from mermaid_train.split import SPLITS

TRAINERS = ("packed", "minibatch")
CLF_TYPES = tuple(config.CLASSIFIER_TYPES)  # ("LR", "MLP")
_EVAL_CHUNK = 16_384
_MAPPED_BUDGET = 2 << 30  # bytes of packed features that may stay mapped (in RSS) while training


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

    @classmethod
    def for_set(cls, packed: PackedData, name: str) -> PackedLabels:
        return cls(packed, packed.indices(name))

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

    def labels_of(self, indices: np.ndarray) -> np.ndarray:
        return _class_array(self.packed)[self.packed.y[indices]]

    def load_data_in_batches(self, batch_size: int | None = 1000, random_seed: int | None = None):
        """``(X float32 [b, dim], labels [b])`` batches; shuffled by ``default_rng(random_seed)`` if given."""
        order = self.indices
        if random_seed is not None:
            order = np.random.default_rng(random_seed).permutation(order)
        step = batch_size or max(1, len(order))
        for start in range(0, len(order), step):
            chunk = order[start:start + step]
            batch = _gather(self.packed.x, chunk)
            _release(self.packed.x)
            yield batch, self.labels_of(chunk)

    def serialize(self) -> dict:
        return {"packed_dir": str(self.packed.directory), "rows": len(self.indices)}


def packed_task_labels(packed: PackedData) -> TrainingTaskLabels:
    """The ``TrainingTaskLabels`` pyspacer gets for a packed split."""
    return TrainingTaskLabels(**{name: PackedLabels.for_set(packed, name) for name in SPLITS})


def _class_array(packed: PackedData) -> np.ndarray:
    return np.asarray(packed.classes, dtype=str)


def _gather(x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``x[indices]`` as a float32 array, reading the memmap in ascending row order."""
    if len(indices) > 1 and np.any(indices[1:] < indices[:-1]):
        order = np.argsort(indices, kind="stable")
        out = np.empty((len(indices), x.shape[1]), dtype=np.float32)
        out[order] = x[indices[order]]
        return out
    return np.asarray(x[indices], dtype=np.float32)


def _release(x: np.ndarray) -> None:
    """Drop the mapped feature pages from this process's RSS (the page cache keeps them).

    Random row gathers from a memmap map whole fault-around windows (64 KiB per 5 KiB row), so an epoch
    maps the entire file into the process's RSS. Up to ``_MAPPED_BUDGET`` that is fine (and re-faulting
    pages after every batch would cost ~15% of an epoch); above it, pages are dropped after each batch.
    """
    if x.nbytes > _MAPPED_BUDGET:
        _advise(x, "MADV_DONTNEED")


def _advise(x: np.ndarray, advice: str) -> None:
    handle = getattr(x, "_mmap", None)
    if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, advice):
        try:
            handle.madvise(getattr(mmap, advice))
        except (OSError, ValueError):  # pragma: no cover - platform without the advice
            pass


# ----------------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------------


class PackedTrainer(ClassifierTrainer):
    """pyspacer ``ClassifierTrainer`` streaming mini-batches from packed float32 arrays (module docstring).

    Constructor arguments are plain values so ``serialize()`` / ``ClassifierTrainer.deserialize()``
    round-trip. After a call, ``self.report`` holds what pyspacer's return message has no room for.
    """

    def __init__(
        self,
        pack_dir: str = "",
        batch_size: int = config.TRAINING_BATCH_LABEL_COUNT,
        seed: int = 0,
        mlp_hidden_layer_sizes: tuple[int, ...] | None = None,
        mlp_learning_rate_init: float | None = None,
        mlp_large_data_threshold: int = 50000,
        sgd_loss: str = "log_loss",
        sgd_average: bool = True,
        blas_threads: int = 1,
    ) -> None:
        self.pack_dir = str(pack_dir)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.mlp_hidden_layer_sizes = tuple(int(v) for v in mlp_hidden_layer_sizes) if mlp_hidden_layer_sizes else None
        self.mlp_learning_rate_init = mlp_learning_rate_init
        self.mlp_large_data_threshold = int(mlp_large_data_threshold)
        self.sgd_loss = sgd_loss
        self.sgd_average = bool(sgd_average)
        self.blas_threads = int(blas_threads)
        self.report: dict = {}
        self.progress: Progress = SilentProgress()
        if self.batch_size < 1:
            raise TrainConfigError(f"batch size must be >= 1, got {batch_size}", fix="pass e.g. batch_size=5000")

    def serialize(self) -> dict:
        data = super().serialize()
        for name, param in inspect.signature(self.__init__).parameters.items():
            value = getattr(self, name)
            if value != param.default:
                data[name] = list(value) if isinstance(value, tuple) else value
        return data

    def _labels(self, labels: TrainingTaskLabels) -> tuple[PackedData, dict[str, np.ndarray]]:
        sets = {name: labels[name] for name in SPLITS}
        if all(isinstance(s, PackedLabels) for s in sets.values()):
            return sets["train"].packed, {name: s.indices for name, s in sets.items()}
        raise TrainDataError(
            "PackedTrainer needs packed labels (mermaid_train.trainer.packed_task_labels), got "
            + ", ".join(type(s).__name__ for s in sets.values()),
            where=self.pack_dir or None,
            fix="build the message with packed_task_labels(open_packed(pack_dir)) or use trainer='minibatch'",
        )

    def __call__(self, labels, nbr_epochs, pc_models, clf_type):
        if self.blas_threads > 0:
            with threadpool_limits(limits=self.blas_threads, user_api="blas"):
                return self._call(labels, nbr_epochs, pc_models, clf_type)
        return self._call(labels, nbr_epochs, pc_models, clf_type)

    def _call(self, labels, nbr_epochs, pc_models, clf_type):
        if clf_type not in config.CLASSIFIER_TYPES:
            raise TrainConfigError(f"unknown classifier type {clf_type!r}", fix=f"use one of {', '.join(CLF_TYPES)}")
        t0 = time.time()
        packed, idx = self._labels(labels)
        classes = sorted(labels["ref"].classes_set)
        clf, ref_accs, epoch_seconds = self._train(packed, idx["train"], idx["ref"], classes, nbr_epochs, clf_type)
        model_classes = np.asarray(clf.classes_)

        # validation: probabilities for every val point, in packed order
        val_idx = idx["val"]
        proba = np.empty((len(val_idx), len(model_classes)), dtype=np.float64)
        for start in range(0, len(val_idx), _EVAL_CHUNK):
            chunk = val_idx[start:start + _EVAL_CHUNK]
            proba[start:start + len(chunk)] = clf.predict_proba(_gather(packed.x, chunk))
            _release(packed.x)
        val_labels = _class_array(packed)[packed.y[val_idx]]
        gt = np.searchsorted(model_classes, val_labels)
        if np.any(gt >= len(model_classes)) or np.any(model_classes[np.minimum(gt, len(model_classes) - 1)] != val_labels):
            raise TrainDataError("the val set holds a class the model was not trained on",
                                 fix="report this: preprocess_labels should have removed it")
        est = proba.argmax(axis=1)
        acc = float(np.mean(gt == est))

        pc_accs = []
        for pc_model in pc_models:
            hits = 0
            for start in range(0, len(val_idx), _EVAL_CHUNK):
                chunk = val_idx[start:start + _EVAL_CHUNK]
                pred = np.asarray(pc_model.predict(_gather(packed.x, chunk)))
                _release(packed.x)
                hits += int(np.sum(pred.astype(str) == val_labels[start:start + len(chunk)]))
            pc_accs.append(hits / len(val_idx))

        self.report = {"val_indices": val_idx, "val_proba": proba, "epoch_seconds": epoch_seconds,
                       "classes": model_classes.tolist()}
        return (
            clf,
            ValResults(scores=proba.max(axis=1).tolist(), gt=gt.tolist(), est=est.tolist(),
                       classes=model_classes.tolist()),
            TrainClassifierReturnMsg(acc=acc, pc_accs=pc_accs, ref_accs=ref_accs, runtime=time.time() - t0),
        )

    def _classifier(self, n_train: int, clf_type: str, rng_state: np.random.RandomState):
        if clf_type == "MLP":
            if self.mlp_hidden_layer_sizes is not None:
                hls, lr = self.mlp_hidden_layer_sizes, self.mlp_learning_rate_init or 1e-3
            elif n_train >= self.mlp_large_data_threshold:
                hls, lr = (200, 100), 1e-4
            else:
                hls, lr = (100,), 1e-3
            return MLPClassifier(hidden_layer_sizes=hls, learning_rate_init=lr, random_state=rng_state)
        return SGDClassifier(loss=self.sgd_loss, average=self.sgd_average, random_state=self.seed)

    def _train(self, packed, train_idx, ref_idx, classes, nbr_epochs, clf_type):
        _advise(packed.x, "MADV_RANDOM")  # no read-ahead: batches are random rows
        refx = _gather(packed.x, ref_idx)
        _release(packed.x)
        names = _class_array(packed)
        # Train on class indices (sorted like the names, so the one-hot columns and hence the weights
        # are the same as with string labels) and name the classes afterwards: sklearn sorts the
        # labels of every batch, which is slow for 70-character strings.
        class_codes = np.searchsorted(names, np.asarray(classes, dtype=str)).astype(np.int64)
        refy = packed.y[ref_idx].astype(np.int64)
        rng_state = np.random.RandomState(self.seed)
        clf = self._classifier(len(train_idx), clf_type, rng_state)
        ref_accs: list[float] = []
        epoch_seconds: list[float] = []
        with self.progress.task(f"train {clf_type} ({len(train_idx):,} points, {len(classes)} classes)",
                                total=nbr_epochs) as task:
            for epoch in range(nbr_epochs):
                started = time.perf_counter()
                order = np.random.default_rng([self.seed, epoch]).permutation(train_idx)
                for start in range(0, len(order), self.batch_size):
                    # a batch's rows in file order (sequential reads); partial_fit shuffles within it
                    chunk = np.sort(order[start:start + self.batch_size])
                    batch = _gather(packed.x, chunk)
                    _release(packed.x)  # bounds RSS on big packs: one batch of mapped pages at a time
                    clf.partial_fit(batch, packed.y[chunk].astype(np.int64), classes=class_codes)
                    _use_in_place_adam(clf)
                ref_accs.append(float(np.mean(clf.predict(refx) == refy)))
                epoch_seconds.append(time.perf_counter() - started)
                task.advance()
        if isinstance(clf, MLPClassifier):
            clf.random_state = self.seed  # a plain int in the stored model, not the generator
            _restore_adam(clf)  # the stored model holds sklearn's own optimizer class
        _name_classes(clf, names)
        calibrated = CalibratedClassifierCV(clf, cv="prefit")
        calibrated.fit(refx, names[refy])
        return calibrated, ref_accs, epoch_seconds


class InPlaceAdam(AdamOptimizer):
    """sklearn's ``AdamOptimizer`` with the same arithmetic, done in place in preallocated buffers.

    sklearn builds six temporary arrays per parameter per 200-sample step (a third of the MLP's time on
    1280 x 200 weights). Every operation here is the one sklearn does, on the same dtypes (the update is
    computed in float64 because sklearn's learning rate is a numpy float64, then added to the float32
    weights), so the weights are bit-for-bit those of sklearn's optimizer (tested). Swapped in after the
    first ``partial_fit`` and swapped back before the model is stored.
    """

    def update_params(self, params, grads):
        self.t += 1
        self.learning_rate = self.learning_rate_init * np.sqrt(1 - self.beta_2**self.t) / (1 - self.beta_1**self.t)
        scratch = self.__dict__.setdefault("_scratch", {})
        coefficients = (self.beta_1, self.beta_2, -self.learning_rate, self.epsilon)
        for i, (param, m, v, grad) in enumerate(zip(params, self.ms, self.vs, grads)):
            if i not in scratch:
                scratch[i] = (np.empty_like(m), np.empty(m.shape, dtype=np.result_type(m.dtype, coefficients[2])))
            _adam_step(param, m, v, grad, *scratch[i], coefficients)


def _adam_step(param, m, v, grad, tmp, update, coefficients) -> None:
    """sklearn's Adam update of one parameter array, in place (see ``InPlaceAdam``)."""
    b1, b2, neg_lr, epsilon = coefficients
    m *= b1  # beta_1 * m + (1 - beta_1) * grad
    np.multiply(grad, 1 - b1, out=tmp)
    m += tmp
    v *= b2  # beta_2 * v + (1 - beta_2) * grad**2
    np.multiply(grad, grad, out=tmp)
    tmp *= 1 - b2
    v += tmp
    np.multiply(m, neg_lr, out=update)  # -learning_rate * m / (sqrt(v) + epsilon)
    np.sqrt(v, out=tmp)
    tmp += epsilon
    np.divide(update, tmp, out=update)
    param += update


def _name_classes(clf, names: np.ndarray) -> None:
    """Turn a classifier fitted on class indices into one fitted on the class names (same columns)."""
    named = names[np.asarray(clf.classes_, dtype=np.int64)]
    if np.any(named[1:] <= named[:-1]):  # pragma: no cover - names are sorted and unique
        raise TrainDataError("class names are not sorted", fix="report this")
    clf.classes_ = named
    binarizer = getattr(clf, "_label_binarizer", None)
    if binarizer is not None:
        binarizer.classes_ = named


def _use_in_place_adam(clf) -> None:
    optimizer = getattr(clf, "_optimizer", None)
    if type(optimizer) is AdamOptimizer:
        optimizer.__class__ = InPlaceAdam


def _restore_adam(clf) -> None:
    optimizer = getattr(clf, "_optimizer", None)
    if isinstance(optimizer, InPlaceAdam):
        optimizer.__dict__.pop("_scratch", None)
        optimizer.__class__ = AdamOptimizer


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


@dataclass
class TrainOutcome:
    model_path: Path
    valresult_path: Path
    classes: list[str]  # the model's classes; val_gt / val_est index into it
    val_gt: np.ndarray
    val_est: np.ndarray
    val_scores: np.ndarray  # probabilities [n_val, n_classes] (packed), else the max score [n_val]
    ref_accs: list[float]
    epoch_seconds: list[float]
    accuracy: float
    previous_accuracies: list[float]
    runtime_s: float
    trainer: str
    val_rows: pl.DataFrame | None = None  # packed rows of the val points, in the order of val_gt
    details: dict = field(default_factory=dict)


def _location(uri: str | Path) -> DataLocation:
    text = str(uri)
    if text.startswith("s3://"):
        bucket, _, key = text[len("s3://"):].partition("/")
        return DataLocation("s3", key, bucket_name=bucket)
    return DataLocation("filesystem", str(Path(text).expanduser().resolve()))


def train(
    packed: PackedData,
    *,
    epochs: int = 10,
    clf_type: str = "MLP",
    trainer: str = "packed",
    seed: int = 0,
    batch_size: int | None = None,
    previous_model_locs=(),
    out_dir: Path,
    progress: Progress | None = None,
) -> TrainOutcome:
    """Train on a packed split through ``spacer.tasks.train_classifier``; store model + valresult in out_dir."""
    if trainer not in TRAINERS:
        raise TrainConfigError(f"unknown trainer {trainer!r}", fix=f"use one of {', '.join(TRAINERS)}")
    if clf_type not in CLF_TYPES:
        raise TrainConfigError(f"unknown classifier type {clf_type!r}", fix=f"use one of {', '.join(CLF_TYPES)}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise TrainConfigError(f"epochs must be a positive integer, got {epochs!r}", fix="pass e.g. epochs=10")
    batch = int(batch_size) if batch_size else config.TRAINING_BATCH_LABEL_COUNT
    progress = progress or SilentProgress()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "classifier.pkl"
    valresult_path = out_dir / "valresult.json"
    previous = [_location(loc) for loc in previous_model_locs]
    rng_state = np.random.get_state()
    started = time.perf_counter()
    try:
        if trainer == "packed":
            spacer_trainer = PackedTrainer(pack_dir=str(packed.directory), batch_size=batch, seed=seed)
            spacer_trainer.progress = progress
            labels = packed_task_labels(packed)
        else:
            spacer_trainer = MiniBatchTrainer(batch_size=batch)
            labels, starts = _stock_labels(packed)
        msg = TrainClassifierMsg(
            job_token=f"{packed.info.get('snapshot_id', 'snapshot')}:{packed.info.get('split_key', '')}",
            trainer=spacer_trainer,
            nbr_epochs=int(epochs),
            clf_type=clf_type,
            labels=labels,
            previous_model_locs=previous,
            model_loc=_location(model_path),
            valresult_loc=_location(valresult_path),
            feature_cache_dir=TrainClassifierMsg.FeatureCache.DISABLED,
        )
        try:
            if trainer == "minibatch":
                with progress.task(f"train {clf_type} with pyspacer's MiniBatchTrainer ({epochs} epochs)"):
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
    if trainer == "packed":
        report = spacer_trainer.report
        scores = report["val_proba"]
        val_rows = packed.rows[report["val_indices"]]
        epoch_seconds = report["epoch_seconds"]
    else:
        scores = np.asarray(valres["scores"], dtype=np.float64)
        val_idx = packed.indices("val")
        val_rows = packed.rows[val_idx].filter(pl.col("class_key").is_in(classes))
        epoch_seconds = _stock_epoch_seconds(starts, int(epochs))
    return TrainOutcome(
        model_path=model_path,
        valresult_path=valresult_path,
        classes=classes,
        val_gt=gt,
        val_est=est,
        val_scores=scores,
        ref_accs=[float(a) for a in result.ref_accs],
        epoch_seconds=[float(s) for s in epoch_seconds],
        accuracy=float(result.acc),
        previous_accuracies=[float(a) for a in result.pc_accs],
        runtime_s=runtime,
        trainer=trainer,
        val_rows=val_rows,
        details={"spacer_runtime_s": float(result.runtime), "trainer": spacer_trainer.serialize(),
                 "batch_size": batch, "seed": int(seed), "clf_type": clf_type, "epochs": int(epochs)},
    )


def _stock_labels(packed: PackedData) -> tuple[TrainingTaskLabels, dict[str, list[float]]]:
    """Real ``ImageLabels`` pointing at the cached feature files, in packed order (the stock comparison)."""
    cache_dir = packed.info.get("cache_dir")
    if not cache_dir:
        raise TrainDataError("the packed folder does not say where its feature cache is", where=str(packed.directory),
                             fix="re-pack with this version (delete the packed folder)")
    cache = FeatureCache(Path(cache_dir))
    return stock_task_labels(packed.rows, lambda uri: DataLocation("filesystem", str(cache.path_for(uri))))


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
