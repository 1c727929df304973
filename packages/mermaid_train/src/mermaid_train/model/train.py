"""The training loop: epochs over the packed train rows, ref scores per epoch, early stopping.

Each epoch visits the train rows in a seeded permutation (``numpy.random.default_rng([seed, epoch])``),
in chunks of whole mini-batches. A prefetch thread gathers the next chunk from the memory-mapped pack
(ascending file order, converted to float32, into one of two reused buffers) while the current chunk is
trained on, so reading overlaps with the matrix products (numpy's fancy indexing and BLAS both release
the GIL). The result never depends on that timing: the chunk contents are fixed by the permutation.

After every epoch the ref set is scored: loss (the training loss on ref, with the same class weights,
without L2), accuracy and balanced accuracy. With ``patience`` the loop stops when the watched metric
(``ref_loss``: lower is better; ``ref_balanced_accuracy``: higher is better) has not improved for that
many epochs, and the weights of the best epoch are restored (the model kept is the best one, not the
last). Without it every epoch runs and the last weights are kept (pyspacer's recipe).

The same loop trains pyspacer's logistic-regression option (``SGDClassifier.partial_fit`` per chunk, with
the sample weights), keeping a copy of the best epoch's model for early stopping.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from mermaid_data.progress import Progress, SilentProgress
from sklearn.linear_model import SGDClassifier

from mermaid_train.features.pack import advise, gather
from mermaid_train.metrics.classification import balanced_accuracy
from mermaid_train.model import mlp
from mermaid_train.model.blas import blas_threads, choose_threads

#: Rows gathered per prefetch chunk (rounded to whole mini-batches).
CHUNK_ROWS = 8192


class StopMetric(StrEnum):
    REF_LOSS = "ref_loss"
    REF_BALANCED_ACCURACY = "ref_balanced_accuracy"


@dataclass(frozen=True)
class LoopConfig:
    """What the loop needs besides the data (all plain values: they are logged)."""

    epochs: int
    batch_size: int
    seed: int = 0
    patience: int | None = None  # None: no early stopping, keep the last epoch
    stop_metric: str = StopMetric.REF_LOSS.value
    blas_threads: int | None = None  # None: choose (model.blas.choose_threads)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float  # mean loss of the epoch's mini-batches (weighted, with L2 for the MLP)
    ref_loss: float
    ref_accuracy: float
    ref_balanced_accuracy: float
    seconds: float


@dataclass(frozen=True)
class Fit:
    """A finished loop: the kept model state and what each epoch scored."""

    epochs: tuple[EpochRecord, ...]
    best_epoch: int  # the epoch whose weights are kept
    stopped_early: bool
    blas_threads: int
    flops: int  # floating-point operations of the training steps and ref passes (MLP; 0 for LR)
    params: mlp.Params | None = None  # MLP weights
    optimizer: dict = field(default_factory=dict)  # MLP: Adam's m, v, t at the kept epoch
    linear: SGDClassifier | None = None  # LR: the kept model

    @property
    def train_seconds(self) -> float:
        return float(sum(e.seconds for e in self.epochs))


def fit_mlp(x: np.ndarray, y: np.ndarray, train_idx: np.ndarray, ref_x: np.ndarray, ref_y: np.ndarray, *,
            n_classes: int, hidden: tuple[int, ...], learning_rate: float, alpha: float, config: LoopConfig,
            class_weights: np.ndarray | None = None, progress: Progress | None = None) -> Fit:
    """Train an MLP on ``x[train_idx]`` (class indices ``y``) with our loop (module docstring)."""
    arch = mlp.Architecture.for_classes(x.shape[1], hidden, n_classes)
    params = mlp.Params.glorot(arch, config.seed)
    state = mlp.Trainer(params, learning_rate=learning_rate, alpha=alpha, batch_size=config.batch_size)
    threads = choose_threads(arch.gemm_shapes(config.batch_size), config.blas_threads)
    ref_w = class_weights[ref_y] if class_weights is not None else None
    kept: dict = {}

    def step(xb: np.ndarray, yb: np.ndarray) -> float:
        wb = class_weights[yb] if class_weights is not None else None
        return state.step(xb, yb, wb) * len(yb)

    def score() -> tuple[float, float, float]:
        proba = mlp.probabilities(params, ref_x)
        ce = mlp.cross_entropy(proba, ref_y)
        loss = float(np.average(ce, weights=ref_w)) if ref_w is not None else float(ce.mean())
        pred = proba.argmax(axis=1)
        return loss, float((pred == ref_y).mean()), balanced_accuracy(ref_y, pred, n_classes)

    def keep() -> None:
        kept.update(flat=params.flat.copy(), m=state.m.copy(), v=state.v.copy(), t=state.t)

    with blas_threads(threads):
        records, best, stopped = _loop(x, y, train_idx, config, step, score, keep, progress,
                                       f"train MLP {hidden} ({len(train_idx):,} points, {n_classes} classes)")
    if kept:
        params.flat[...] = kept["flat"]
        state.m[...], state.v[...], state.t = kept["m"], kept["v"], kept["t"]
    flops = len(records) * (arch.flops_train(len(train_idx)) + arch.flops_forward(len(ref_y)))
    return Fit(tuple(records), best, stopped, threads, flops, params=params,
               optimizer={"m": state.m, "v": state.v, "t": state.t})


def fit_linear(x: np.ndarray, y: np.ndarray, train_idx: np.ndarray, ref_x: np.ndarray, ref_y: np.ndarray, *,
               n_classes: int, config: LoopConfig, class_weights: np.ndarray | None = None,
               progress: Progress | None = None) -> Fit:
    """pyspacer's LR option: ``SGDClassifier(loss="log_loss", average=True)``, ``partial_fit`` per chunk."""
    clf = SGDClassifier(loss="log_loss", average=True, random_state=config.seed)
    classes = np.arange(n_classes)
    kept: dict = {}

    def step(xb: np.ndarray, yb: np.ndarray) -> float:
        wb = class_weights[yb] if class_weights is not None else None
        clf.partial_fit(xb, yb, classes=classes, sample_weight=wb)
        return float("nan")

    def score() -> tuple[float, float, float]:
        with np.errstate(invalid="ignore", divide="ignore"):  # OvR rows whose sigmoids all underflow
            proba = np.nan_to_num(clf.predict_proba(ref_x), nan=1.0 / n_classes)
        picked = np.clip(proba[np.arange(len(ref_y)), ref_y], 1e-15, 1.0)
        ce = -np.log(picked)
        ref_w = class_weights[ref_y] if class_weights is not None else None
        loss = float(np.average(ce, weights=ref_w)) if ref_w is not None else float(ce.mean())
        pred = proba.argmax(axis=1)
        return loss, float((pred == ref_y).mean()), balanced_accuracy(ref_y, pred, n_classes)

    def keep() -> None:
        kept["clf"] = copy.deepcopy(clf)

    threads = choose_threads([(config.batch_size, x.shape[1], n_classes)], config.blas_threads)
    with blas_threads(threads):
        records, best, stopped = _loop(x, y, train_idx, config, step, score, keep, progress,
                                       f"train LR ({len(train_idx):,} points, {n_classes} classes)",
                                       chunk_is_batch=True)
    return Fit(tuple(records), best, stopped, threads, 0, linear=kept.get("clf", clf))


def _loop(x, y, train_idx, config: LoopConfig, step, score, keep, progress, title: str, *,
          chunk_is_batch: bool = False) -> tuple[list[EpochRecord], int, bool]:
    """Epochs of ``step`` over mini-batches, ``score`` on ref after each; early stopping calls ``keep``."""
    progress = progress or SilentProgress()
    lower_is_better = config.stop_metric == StopMetric.REF_LOSS
    batch = config.batch_size
    chunk_rows = batch if chunk_is_batch else batch * max(1, CHUNK_ROWS // batch)
    records: list[EpochRecord] = []
    best_value, best_epoch, stopped = None, 0, False
    advise(x, "MADV_RANDOM")  # no read-ahead: chunks are random rows
    buffers = [np.empty((min(chunk_rows, len(train_idx)), x.shape[1]), dtype=np.float32) for _ in range(2)]
    with progress.task(title, total=config.epochs) as task, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        for epoch in range(config.epochs):
            started = time.perf_counter()
            order = np.random.default_rng([config.seed, epoch]).permutation(train_idx)
            loss_sum = 0.0
            for xc, yc in _chunks(x, y, order, chunk_rows, buffers, pool):
                for start in range(0, len(yc), batch):
                    loss_sum += step(xc[start:start + batch], yc[start:start + batch])
            ref_loss, ref_acc, ref_bacc = score()
            records.append(EpochRecord(epoch, loss_sum / len(order), ref_loss, ref_acc, ref_bacc,
                                       time.perf_counter() - started))
            task.advance()
            if config.patience is None:
                continue
            value = ref_loss if lower_is_better else ref_bacc
            if best_value is None or (value < best_value if lower_is_better else value > best_value):
                best_value, best_epoch = value, epoch
                keep()
            elif epoch - best_epoch >= config.patience:
                stopped = epoch + 1 < config.epochs
                break
    if config.patience is None:
        best_epoch = len(records) - 1
    return records, best_epoch, stopped


def _chunks(x, y, order: np.ndarray, chunk_rows: int, buffers: list[np.ndarray],
            pool: ThreadPoolExecutor) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(x[chunk], y[chunk])`` for consecutive chunks of ``order``; the next chunk is gathered meanwhile."""
    starts = range(0, len(order), chunk_rows)

    def load(i: int, start: int) -> np.ndarray:
        idx = order[start:start + chunk_rows]
        return gather(x, idx, out=buffers[i % 2][:len(idx)])

    pending = pool.submit(load, 0, 0) if len(order) else None
    for i, start in enumerate(starts):
        current = pending.result()
        if start + chunk_rows < len(order):
            pending = pool.submit(load, i + 1, start + chunk_rows)
        yield current, y[order[start:start + chunk_rows]]
