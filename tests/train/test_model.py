"""Our MLP against scikit-learn's maths, its export, class weights, logit adjustment and the training loop."""

from __future__ import annotations

import numpy as np
import pytest
from mermaid_train.model import balance, export, mlp
from mermaid_train.model.blas import blas_threads, choose_threads, gemm_gflops
from mermaid_train.model.train import LoopConfig, _chunks, fit_mlp
from sklearn.neural_network import MLPClassifier


def _data(n: int = 600, d: int = 24, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 2
    y = rng.integers(0, k, n)
    x = (centers[y] + rng.standard_normal((n, d))).astype(np.float32)
    return x, y


@pytest.mark.parametrize("k", [2, 5])
def test_exported_predict_proba_is_our_forward_pass(k: int) -> None:
    """Bug pinned: the exported sklearn model predicting something else than the network we trained."""
    x, y = _data(k=k)
    arch = mlp.Architecture.for_classes(x.shape[1], (16, 8), k)
    params = mlp.Params.glorot(arch, 3)
    trainer = mlp.Trainer(params, learning_rate=1e-2, alpha=1e-4, batch_size=100)
    for start in range(0, 600, 100):
        trainer.step(x[start:start + 100], y[start:start + 100])
    names = np.array([f"class{i}::" for i in range(k)])
    clf = export.to_mlp_classifier(params, names, learning_rate=1e-2, alpha=1e-4, batch_size=100, seed=3,
                                   optimizer={"m": trainer.m, "v": trainer.v, "t": trainer.t}, n_iter=1,
                                   samples_seen=600, loss_curve=[0.5])
    ours = mlp.probabilities(params, x)
    np.testing.assert_array_equal(clf.predict_proba(x), ours)
    assert clf.classes_.tolist() == names.tolist() and clf.n_iter_ == 1 and clf._optimizer.t == trainer.t
    assert (clf.predict(x) == names[ours.argmax(axis=1)]).all()
    # the network's own view: hidden sizes, output activation as sklearn builds it
    assert clf.hidden_layer_sizes == (16, 8) and clf.out_activation_ == ("logistic" if k == 2 else "softmax")


def test_steps_follow_sklearns_partial_fit() -> None:
    """Bug pinned: our loop drifting from sklearn's MLP maths (init, ReLU, softmax CE, L2, Adam)."""
    x, y = _data(n=400, k=3)
    names = np.array(["a", "b", "c"])
    arch = mlp.Architecture.for_classes(x.shape[1], (20, 10), 3)
    params = mlp.Params.glorot(arch, 7)
    trainer = mlp.Trainer(params, learning_rate=1e-3, alpha=1e-3, batch_size=50)
    clf = MLPClassifier(hidden_layer_sizes=(20, 10), learning_rate_init=1e-3, alpha=1e-3, batch_size=50,
                        shuffle=False, random_state=7)
    losses = []
    for start in range(0, 400, 50):
        losses.append(trainer.step(x[start:start + 50], y[start:start + 50]))
        clf.partial_fit(x[start:start + 50], names[y[start:start + 50]], classes=names)
        assert losses[-1] == pytest.approx(clf.loss_, rel=1e-5)
    for ours, theirs in zip(params.coefs + params.intercepts, clf.coefs_ + clf.intercepts_):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)


def _reference_loss(flat: np.ndarray, arch: mlp.Architecture, x: np.ndarray, y: np.ndarray, w: np.ndarray,
                    alpha: float) -> float:
    """The weighted loss written out in float64, independently of mlp.py."""
    params = mlp.Params(arch, flat.astype(np.float32))
    coefs = [c.astype(np.float64) for c in params.coefs]
    a = x.astype(np.float64)
    for i, (coef, b) in enumerate(zip(coefs, params.intercepts)):
        a = a @ coef + b
        if i < len(coefs) - 1:
            a = np.maximum(a, 0)
    a = a - a.max(axis=1, keepdims=True)
    logp = a - np.log(np.exp(a).sum(axis=1, keepdims=True))
    return float((-(w * logp[np.arange(len(y)), y]).sum() + 0.5 * alpha * sum((c**2).sum() for c in coefs)) / len(y))


def test_weighted_gradient_is_the_weighted_losss_gradient() -> None:
    """Bug pinned: sample weights applied to the wrong term (or not at all) in backprop."""
    x, y = _data(n=40, d=6, k=3, seed=2)
    w = np.linspace(0.2, 3.0, 40).astype(np.float32)
    arch = mlp.Architecture.for_classes(6, (5,), 3)
    params = mlp.Params.glorot(arch, 1)
    before = params.flat.astype(np.float64)
    trainer = mlp.Trainer(params, learning_rate=1e-3, alpha=0.1, batch_size=40)
    loss = trainer.step(x, y, w)
    assert loss == pytest.approx(_reference_loss(before, arch, x, y, w, 0.1), rel=1e-5)
    eps = 1e-3
    numeric = np.empty_like(before)
    for i in range(len(before)):
        up, down = before.copy(), before.copy()
        up[i] += eps
        down[i] -= eps
        numeric[i] = (_reference_loss(up, arch, x, y, w, 0.1) - _reference_loss(down, arch, x, y, w, 0.1)) / (2 * eps)
    np.testing.assert_allclose(trainer.grads.flat, numeric, rtol=2e-2, atol=2e-4)
    # unit weights are the unweighted step
    a, b = mlp.Trainer(mlp.Params.glorot(arch, 1), learning_rate=1e-3, alpha=0.1, batch_size=40), \
        mlp.Trainer(mlp.Params.glorot(arch, 1), learning_rate=1e-3, alpha=0.1, batch_size=40)
    assert a.step(x, y) == b.step(x, y, np.ones(40, np.float32))
    np.testing.assert_array_equal(a.params.flat, b.params.flat)


def test_effective_number_weights_by_hand() -> None:
    """Golden case: two classes of 1000 and 10 points, beta 0.99, with and without a ratio cap of 5."""
    w = balance.effective_number_weights([1000, 10], beta=0.99)
    raw = np.array([0.01 / (1 - 0.99**1000), 0.01 / (1 - 0.99**10)])  # 0.0100004, 0.104583
    np.testing.assert_allclose(w, raw * 1010 / (1000 * raw[0] + 10 * raw[1]))
    np.testing.assert_allclose(w, [0.91437, 9.5625], rtol=1e-4)
    capped = balance.effective_number_weights([1000, 10], beta=0.99, ratio_cap=5)
    np.testing.assert_allclose(capped[1] / capped[0], 5.0)
    np.testing.assert_allclose(capped, [0.96190, 4.8095], rtol=1e-4)
    assert (1000 * capped[0] + 10 * capped[1]) == pytest.approx(1010)  # mean point weight 1
    assert balance.effective_number_weights([5, 0, 5]).tolist()[1] == 0.0  # an absent class weighs nothing


def test_choose_tau_takes_the_best_balanced_accuracy_within_the_accuracy_bound() -> None:
    table = {0.0: (0.80, 0.30), 0.5: (0.79, 0.35), 1.0: (0.775, 0.40), 1.5: (0.76, 0.45), 2.0: (0.70, 0.50)}
    chosen = balance.choose_tau(lambda t: table[t], grid=table, max_accuracy_loss=0.03)
    assert chosen.tau == 1.0  # 1.5 and 2.0 lose more than 3 points of accuracy
    assert chosen.candidates["eligible"].to_list() == [True, True, True, False, False]
    assert balance.choose_tau(lambda t: (0.8, 0.3), grid=(0.0, 1.0)).tau == 0.0  # ties keep the smallest tau


def test_calibration_weights_by_hand() -> None:
    """Golden case: ref points weighted by class weight x prior**-tau, mean 1; None when balance is off."""
    y = np.array([0, 0, 0, 1])
    prior = balance.log_prior([3, 1])  # log 3/4, log 1/4
    assert balance.ref_weights(y, None, prior, 0.0) is None
    w = balance.ref_weights(y, None, prior, 1.0)  # prior**-1: 4/3 and 4 -> relative 1 : 3
    np.testing.assert_allclose(w, np.array([1, 1, 1, 3]) / 1.5)
    w = balance.ref_weights(y, np.array([0.5, 2.0]), prior, 0.0)
    np.testing.assert_allclose(w, np.array([0.5, 0.5, 0.5, 2.0]) / 0.875)


def test_logit_adjustment_is_a_bias_shift() -> None:
    """Bug pinned: the exported logit adjustment differing from softmax(logits - tau * log prior)."""
    x, _y = _data(k=4)
    arch = mlp.Architecture.for_classes(x.shape[1], (8,), 4)
    params = mlp.Params.glorot(arch, 0)
    names = np.array(["a", "b", "c", "d"])
    clf = export.to_mlp_classifier(params, names, learning_rate=1e-3, alpha=1e-4, batch_size=200, seed=0)
    prior = balance.log_prior([500, 50, 5, 0])
    export.shift_output_bias(clf, 1.5 * prior)
    z = mlp.logits(params, x).astype(np.float64) - 1.5 * prior
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(clf.predict_proba(x), expected / expected.sum(axis=1, keepdims=True), rtol=1e-5)


@pytest.mark.parametrize("metric", ["ref_loss", "ref_balanced_accuracy"])
def test_early_stopping_keeps_the_best_epoch(metric: str) -> None:
    """Bug pinned: the model kept being the last epoch's, not the best one on ref (demo: peak at epoch 3)."""
    x, y = _data(n=1200, d=16, k=3, seed=4)
    ref_x, ref_y = x[:300], (y[:300] + 1) % 3  # ref disagrees with train: it gets worse as training goes on
    train_idx = np.arange(300, 1200)
    fit = fit_mlp(x, y, train_idx, ref_x, ref_y, n_classes=3, hidden=(12,), learning_rate=1e-2, alpha=1e-4,
                  config=LoopConfig(epochs=30, batch_size=100, seed=0, patience=2, stop_metric=metric, blas_threads=1))
    values = [e.ref_loss if metric == "ref_loss" else -e.ref_balanced_accuracy for e in fit.epochs]
    assert fit.best_epoch == int(np.argmin(values)) and fit.best_epoch < len(fit.epochs) - 1
    assert fit.stopped_early and len(fit.epochs) == fit.best_epoch + 3
    proba = mlp.probabilities(fit.params, ref_x)
    kept_loss = float(mlp.cross_entropy(proba, ref_y).mean())
    assert kept_loss == fit.epochs[fit.best_epoch].ref_loss  # the restored weights are the best epoch's
    assert kept_loss != fit.epochs[-1].ref_loss
    # without patience every epoch runs and the last is kept
    full = fit_mlp(x, y, train_idx, ref_x, ref_y, n_classes=3, hidden=(12,), learning_rate=1e-2, alpha=1e-4,
                   config=LoopConfig(epochs=5, batch_size=100, seed=0, blas_threads=1))
    assert len(full.epochs) == 5 and full.best_epoch == 4 and not full.stopped_early


def test_loop_is_deterministic_and_reads_what_it_should(tmp_path) -> None:
    """Bug pinned: the prefetch thread changing which rows a chunk holds (results must not depend on timing)."""
    x, y = _data(n=2000, d=8, k=3)
    mapped = np.memmap(tmp_path / "x.f16", dtype=np.float16, mode="w+", shape=x.shape)
    mapped[:] = x
    order = np.random.default_rng(0).permutation(2000)
    buffers = [np.empty((300, 8), np.float32) for _ in range(2)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        seen = [(xc.copy(), yc) for xc, yc in _chunks(mapped, y, order, 300, buffers, pool)]
    assert np.array_equal(np.concatenate([s[0] for s in seen]), mapped[order].astype(np.float32))
    assert np.array_equal(np.concatenate([s[1] for s in seen]), y[order])
    config = LoopConfig(epochs=2, batch_size=64, seed=5, blas_threads=1)
    a = fit_mlp(mapped, y, np.arange(2000), x[:100], y[:100], n_classes=3, hidden=(6,), learning_rate=1e-3,
                alpha=1e-4, config=config)
    b = fit_mlp(mapped, y, np.arange(2000), x[:100], y[:100], n_classes=3, hidden=(6,), learning_rate=1e-3,
                alpha=1e-4, config=config)
    np.testing.assert_array_equal(a.params.flat, b.params.flat)
    assert a.flops == 2 * (a.params.arch.flops_train(2000) + a.params.arch.flops_forward(100))


def test_gemm_yardstick_and_thread_choice() -> None:
    shapes = mlp.Architecture.for_classes(64, (32,), 5).gemm_shapes(64)
    assert shapes == [(64, 64, 32), (64, 32, 5), (64, 64, 32), (32, 64, 5), (64, 5, 32)]
    assert gemm_gflops(shapes, 1, seconds=0.05) > 0
    assert choose_threads(shapes, 1) == 1
    assert choose_threads(shapes) >= 1
    with blas_threads(1):
        pass
