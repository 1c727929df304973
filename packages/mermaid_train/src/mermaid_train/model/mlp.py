"""A multi-layer perceptron in numpy float32, with the maths of scikit-learn's ``MLPClassifier``.

- Layers: ``x @ W + b``, ReLU between layers; the output is softmax (three or more classes) or one
  logistic unit (two classes), as sklearn does, so the weights export into an ``MLPClassifier`` as they are.
- Initialisation: sklearn's Glorot-uniform draw (``uniform(-sqrt(6 / (fan_in + fan_out)), +...)``, weights
  then biases, layer by layer) from ``numpy.random.RandomState(seed)``.
- Loss: cross-entropy, optionally weighted per sample (``w_i``), plus L2 ``alpha``:
  ``(sum_i w_i * CE_i + alpha / 2 * sum ||W||^2) / B`` for a batch of ``B`` points. Gradients as in
  sklearn's ``_backprop``: ``dW = (a^T delta + alpha W) / B``, ``db = mean(delta)``, the output delta
  ``w_i * (p_i - onehot_i)``. Unweighted, it is sklearn's computation operation for operation.
- Adam with sklearn's defaults (beta_1 0.9, beta_2 0.999, epsilon 1e-8) and its bias-corrected step
  size, computed in float32 (sklearn promotes the step to float64; the difference is in the 7th digit).

All parameters live in one flat float32 buffer (weights first, then biases: sklearn's ``params`` order),
and so do the gradients and Adam's moments: the optimizer step is a handful of whole-buffer operations
into preallocated scratch, with no temporaries. Activations and deltas are preallocated per batch size.
The matrix products go to BLAS (numpy ``matmul`` with ``out=``), which uses as many threads as the
caller allows (``threadpoolctl``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

BETA_1 = 0.9
BETA_2 = 0.999
EPSILON = 1e-8
DTYPE = np.float32


@dataclass(frozen=True)
class Architecture:
    """Layer widths from the input to the output; ``n_outputs`` is 1 for two classes (logistic output)."""

    layer_units: tuple[int, ...]

    @classmethod
    def for_classes(cls, n_features: int, hidden: tuple[int, ...], n_classes: int) -> Architecture:
        return cls((int(n_features), *(int(h) for h in hidden), 1 if n_classes == 2 else int(n_classes)))

    @property
    def binary(self) -> bool:
        return self.layer_units[-1] == 1

    @property
    def n_layers(self) -> int:
        """Weight matrices (sklearn's ``n_layers_ - 1``)."""
        return len(self.layer_units) - 1

    def shapes(self) -> list[tuple[int, int]]:
        return [(self.layer_units[i], self.layer_units[i + 1]) for i in range(self.n_layers)]

    @property
    def n_coefs(self) -> int:
        return sum(a * b for a, b in self.shapes())

    @property
    def n_params(self) -> int:
        return self.n_coefs + sum(self.layer_units[1:])

    def flops_forward(self, n: int) -> int:
        """Multiply-adds x 2 of the forward pass over ``n`` points."""
        return 2 * n * self.n_coefs

    def flops_train(self, n: int) -> int:
        """FLOPs of forward + backward over ``n`` points: forward, weight gradients, and the deltas of every
        layer but the first (the input needs none)."""
        first = self.layer_units[0] * self.layer_units[1]
        return 2 * n * (self.n_coefs + self.n_coefs + (self.n_coefs - first))

    def gemm_shapes(self, batch: int) -> list[tuple[int, int, int]]:
        """(m, k, n) of every matrix product of one training step on ``batch`` points."""
        out = [(batch, a, b) for a, b in self.shapes()]  # forward
        out += [(a, batch, b) for a, b in self.shapes()]  # dW = a^T delta
        out += [(batch, b, a) for a, b in self.shapes()[1:]]  # delta_{l-1} = delta_l W_l^T
        return out


class Params:
    """Weights and biases as views into one flat float32 buffer (weights first, then biases)."""

    def __init__(self, arch: Architecture, flat: np.ndarray | None = None) -> None:
        self.arch = arch
        self.flat = np.zeros(arch.n_params, dtype=DTYPE) if flat is None else flat
        if self.flat.shape != (arch.n_params,) or self.flat.dtype != DTYPE:
            raise ValueError(f"flat buffer {self.flat.shape} {self.flat.dtype}, expected ({arch.n_params},) float32")
        self.coefs: list[np.ndarray] = []
        self.intercepts: list[np.ndarray] = []
        start = 0
        for a, b in arch.shapes():
            self.coefs.append(self.flat[start:start + a * b].reshape(a, b))
            start += a * b
        for _a, b in arch.shapes():
            self.intercepts.append(self.flat[start:start + b])
            start += b

    @classmethod
    def glorot(cls, arch: Architecture, seed: int) -> Params:
        """sklearn's initialisation for ReLU networks, drawn from ``RandomState(seed)``."""
        params = cls(arch)
        rng = np.random.RandomState(seed)
        for coef, intercept in zip(params.coefs, params.intercepts):
            bound = np.sqrt(6.0 / (coef.shape[0] + coef.shape[1]))
            coef[...] = rng.uniform(-bound, bound, coef.shape)
            intercept[...] = rng.uniform(-bound, bound, intercept.shape[0])
        return params

    def copy(self) -> Params:
        return Params(self.arch, self.flat.copy())

    @property
    def coef_part(self) -> np.ndarray:
        return self.flat[:self.arch.n_coefs]


def forward(params: Params, x: np.ndarray, activations: list[np.ndarray] | None = None) -> np.ndarray:
    """Output probabilities of ``x`` (sklearn's ``_forward_pass`` step for step). With ``activations``
    (preallocated, one per layer after the input), every layer's output is kept there for ``backward``."""
    a = x
    last = params.arch.n_layers - 1
    for i, (coef, intercept) in enumerate(zip(params.coefs, params.intercepts)):
        out = activations[i] if activations is not None else None
        a = np.matmul(a, coef, out=out)
        a += intercept
        if i != last:
            np.maximum(a, 0, out=a)
    return _output_activation(a, params.arch.binary)


def logits(params: Params, x: np.ndarray) -> np.ndarray:
    """The output layer's input (before softmax / logistic) for ``x``."""
    a = x
    last = params.arch.n_layers - 1
    for i, (coef, intercept) in enumerate(zip(params.coefs, params.intercepts)):
        a = np.matmul(a, coef)
        a += intercept
        if i != last:
            np.maximum(a, 0, out=a)
    return a


def _output_activation(a: np.ndarray, binary: bool) -> np.ndarray:
    if binary:  # sklearn: expit in place
        return expit(a, out=a)
    tmp = a - a.max(axis=1)[:, np.newaxis]  # sklearn's softmax, operation for operation
    np.exp(tmp, out=a)
    a /= a.sum(axis=1)[:, np.newaxis]
    return a


def probabilities(params: Params, x: np.ndarray, *, chunk: int = 8192) -> np.ndarray:
    """Class probabilities ``[n, classes]`` (two columns for a binary model, as sklearn's ``predict_proba``)."""
    out = []
    for start in range(0, len(x), chunk):
        p = forward(params, np.asarray(x[start:start + chunk], dtype=DTYPE))
        out.append(np.hstack([1 - p, p]) if params.arch.binary else p)
    if not out:
        return np.zeros((0, 2 if params.arch.binary else params.arch.layer_units[-1]), dtype=DTYPE)
    return np.concatenate(out)


def cross_entropy(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-point cross-entropy of class-probability rows ``proba`` (``[n, k]``) for true classes ``y``."""
    eps = np.finfo(proba.dtype).eps  # sklearn's log_loss clips at the dtype's epsilon
    picked = np.clip(proba[np.arange(len(y)), y], eps, 1 - eps)
    return -np.log(picked)


class Trainer:
    """One optimisation state: parameters, Adam's moments and preallocated buffers for a batch size."""

    def __init__(self, params: Params, *, learning_rate: float, alpha: float, batch_size: int) -> None:
        self.params = params
        self.learning_rate = float(learning_rate)
        self.alpha = float(alpha)
        self.batch_size = int(batch_size)
        arch = params.arch
        self.grads = Params(arch)
        self.m = np.zeros(arch.n_params, dtype=DTYPE)
        self.v = np.zeros(arch.n_params, dtype=DTYPE)
        self.t = 0
        self._scratch = np.empty(arch.n_params, dtype=DTYPE)
        self._update = np.empty(arch.n_params, dtype=DTYPE)
        self._buffers: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def _work(self, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Activations (one per layer) and deltas (one per hidden layer) for a batch of ``n`` points."""
        if n not in self._buffers:
            for other in [k for k in self._buffers if k != self.batch_size]:
                del self._buffers[other]  # keep the full batch's and the last short batch's
            units = self.params.arch.layer_units
            self._buffers[n] = ([np.empty((n, u), dtype=DTYPE) for u in units[1:]],
                                [np.empty((n, u), dtype=DTYPE) for u in units[1:-1]])
        return self._buffers[n]

    def step(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
        """One Adam step on the batch ``(x, y)`` (``y`` class indices, ``weights`` per point); the batch loss."""
        n = x.shape[0]
        params, grads = self.params, self.grads
        acts, deltas = self._work(n)
        out = forward(params, x, acts)
        rows = np.arange(n)
        # loss (sklearn's log_loss: probabilities clipped at eps), then the output delta in place
        if params.arch.binary:
            p = np.clip(out[:, 0], np.finfo(DTYPE).eps, 1 - np.finfo(DTYPE).eps)
            ce = -np.where(y == 1, np.log(p), np.log1p(-p))
            out[:, 0] -= y
        else:
            ce = cross_entropy(out, y)
            out[rows, y] -= 1
        if weights is not None:
            ce = ce * weights
            out *= weights[:, None]
        loss = float(ce.sum(dtype=np.float64))
        last = params.arch.n_layers - 1
        delta = out
        for i in range(last, -1, -1):
            below = x if i == 0 else acts[i - 1]
            np.matmul(below.T, delta, out=grads.coefs[i])
            np.mean(delta, axis=0, out=grads.intercepts[i])
            if i > 0:
                nxt = deltas[i - 1]
                np.matmul(delta, params.coefs[i].T, out=nxt)
                np.copyto(nxt, 0, where=below == 0)  # ReLU's derivative (sklearn: delta[Z == 0] = 0)
                delta = nxt
        # L2 and the 1/B of the weight gradients, over all weights at once
        coef_grads = grads.coef_part
        scratch = self._scratch[:coef_grads.shape[0]]
        np.multiply(params.coef_part, self.alpha, out=scratch)
        coef_grads += scratch
        coef_grads /= n
        loss += 0.5 * self.alpha * float(np.dot(params.coef_part, params.coef_part))
        self._adam()
        return loss / n

    def _adam(self) -> None:
        """sklearn's Adam update, in place over the flat buffers."""
        self.t += 1
        lr = self.learning_rate * np.sqrt(1 - BETA_2**self.t) / (1 - BETA_1**self.t)
        g, m, v, tmp, upd = self.grads.flat, self.m, self.v, self._scratch, self._update
        m *= BETA_1
        np.multiply(g, 1 - BETA_1, out=tmp)
        m += tmp
        v *= BETA_2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - BETA_2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += EPSILON
        np.multiply(m, -float(lr), out=upd)
        upd /= tmp
        self.params.flat += upd
