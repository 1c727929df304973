"""How many cores the matrix products use, and how fast numpy's float32 GEMM runs at given shapes.

OpenBLAS's worker threads wait for each other at the end of every product, so on a machine whose cores
are busy with other work a two-thread product can be several times *slower* than one thread (one of
the workers waits for a time slice). ``choose_threads`` therefore measures, at the network's own shapes
and for 0.6 s (three alternating rounds), one thread against every core this process may use, and keeps the
faster; ``blas_threads=N`` pins it. The count is logged with the run: OpenBLAS's results differ in the
last bits between thread counts (deterministic for a given count), so a run repeats bit for bit with
the same count.

``gemm_gflops`` is also the benchmark's yardstick: the throughput of nothing but the products of one
training step, which the trainer's achieved GFLOP/s is compared with.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_limits

PROBE_SECONDS = 0.1
PROBE_ROUNDS = 3


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Run the block with BLAS limited to ``n`` threads."""
    with threadpool_limits(limits=int(n), user_api="blas"):
        yield


def gemm_gflops(shapes: Sequence[tuple[int, int, int]], threads: int, *, seconds: float = 1.0,
                seed: int = 0) -> float:
    """float32 GFLOP/s of numpy ``matmul`` doing the products ``(m, k) @ (k, n)`` in turn, on ``threads``."""
    rng = np.random.default_rng(seed)
    mats = [(rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32),
             np.empty((m, n), dtype=np.float32)) for m, k, n in shapes]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    with blas_threads(threads):
        for a, b, c in mats:  # warm up: pages, OpenBLAS's buffers and threads
            np.matmul(a, b, out=c)
        rounds = 0
        started = time.perf_counter()
        while True:
            for a, b, c in mats:
                np.matmul(a, b, out=c)
            rounds += 1
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                return flops * rounds / elapsed / 1e9


def choose_threads(shapes: Sequence[tuple[int, int, int]], requested: int | None = None) -> int:
    """``requested`` if given, else the faster of one thread and every available core at ``shapes``."""
    if requested:
        return int(requested)
    cores = available_cores()
    if cores == 1:
        return 1
    # alternate the two, best of three each: a burst of other work during one probe decides nothing
    one = every = 0.0
    for _ in range(PROBE_ROUNDS):
        one = max(one, gemm_gflops(shapes, 1, seconds=PROBE_SECONDS))
        every = max(every, gemm_gflops(shapes, cores, seconds=PROBE_SECONDS))
    return cores if every > one * 1.1 else 1
