"""The hard-set cache: mined once per process even when a job asks while the warm-up mines.

A worker's warm-up thread mines the open rounds' hard sets; a job arriving meanwhile must wait for
that mining rather than start a second one beside it (on two cores that doubles the first wait).
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import torch

from puzzles.verify import hardset


def _toy_task() -> SimpleNamespace:
    """Bits; the label is the first bit. Enough for ``mine_hard_set`` to run its pool and edits."""

    def generate(n: int, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).integers(0, 2, size=(n, 4))

    def labels(tokens) -> np.ndarray:
        return np.asarray(tokens)[:, :1]

    return SimpleNamespace(
        generate=generate, labels=labels, edge_cases=lambda: np.zeros((1, 4), dtype=np.int64)
    )


def test_a_job_waits_for_the_warm_up_mining_instead_of_mining_again() -> None:
    task = _toy_task()
    calls: list[int] = []
    first_call_started = threading.Event()
    release = threading.Event()

    def answers(tokens: torch.Tensor) -> torch.Tensor:
        calls.append(tokens.shape[0])
        if len(calls) == 1:
            first_call_started.set()
            assert release.wait(30), "the test never released the first mining"
        return 1 - tokens[:, :1]  # always wrong: every pool row is a "mistake"

    key = ("toy-weights", "sha", "cpu", "test_hardset_cache")
    results: list[hardset.HardSet] = []

    def mine() -> None:
        results.append(hardset.cached_hard_set(key, task, answers, seed=7, pool_size=64, size=8))

    warm_up = threading.Thread(target=mine)
    warm_up.start()
    assert first_call_started.wait(30)
    calls_of_one_mining_so_far = len(calls)
    job = threading.Thread(target=mine)
    job.start()
    job.join(0.5)
    assert job.is_alive(), "the job must wait for the mining under way, not return or mine"
    assert len(calls) == calls_of_one_mining_so_far, "the job started a second mining"
    release.set()
    warm_up.join(30)
    job.join(30)
    assert len(results) == 2 and results[0] is results[1]
    calls_after = len(calls)
    mine()  # cached now: no model calls at all
    assert len(calls) == calls_after
