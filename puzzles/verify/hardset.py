"""The hard set: inputs mined from the model itself, where a task rule and the model part ways.

A ``predict`` that computes the task's correct answer agrees with a well-trained model almost
everywhere, so agreement on random inputs cannot tell understanding from the rule. The hard set is
where they differ: the model's own mistakes found in a large pool drawn from the seed, single-token
near-misses around them (the task's ``near_misses``: on some the model errs, on some it recovers,
which maps the edge of its mechanism), and the task's hand-picked edge cases. It is mined from the
verification seed (secret on the server, the public seed offline), never shipped as a file, so a
solver cannot read it back; a different seed gives different rows.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch

DEFAULT_POOL = 10_000
DEFAULT_SIZE = 512
POOL_CHUNK = 2_000
NEAR_MISS_ROUNDS = 3
"""Each round edits one token of every row found so far; three rounds reach three edits away."""


@dataclass(frozen=True)
class HardSet:
    tokens: torch.Tensor
    """``[n, seq]`` rows: mistakes first, then near-misses, then the task's edge cases."""
    n_pool_mistakes: int
    n_near_misses: int
    n_edge_cases: int


def hardset_seed(seed: int) -> int:
    """The mining seed derived from the verification seed (distinct from the held-out draw)."""
    digest = hashlib.sha256(f"{int(seed)}:hardset".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _wrong(task: ModuleType, tokens: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    labels = torch.as_tensor(task.labels(tokens)).reshape(answers.shape)
    return (answers != labels).any(-1)


def _unique_rows(tokens: torch.Tensor, seen: set[bytes]) -> torch.Tensor:
    keep = []
    for i, row in enumerate(tokens.numpy()):
        key = row.tobytes()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return tokens[keep]


def mine_hard_set(
    task: ModuleType,
    answers: Callable[[torch.Tensor], torch.Tensor],
    *,
    seed: int,
    pool_size: int = DEFAULT_POOL,
    size: int = DEFAULT_SIZE,
) -> HardSet:
    """Mine up to ``size`` rows from the model (``answers(tokens) -> [n, k]`` class ids).

    Half the budget goes to inputs where the model disagrees with the task (from the pool, then
    from near-misses around those), the rest to near-misses where it agrees and the edge cases.
    Deterministic in ``seed``.
    """
    rng = np.random.default_rng(hardset_seed(seed))
    seen: set[bytes] = set()
    budget = size // 2
    # Draw the pool in chunks and stop once the mistakes fill their half: a model that errs often
    # costs one chunk, a model that errs rarely the whole pool.
    chunks: list[torch.Tensor] = []
    found: list[torch.Tensor] = []
    drawn = 0
    while drawn < pool_size and sum(len(f) for f in found) < budget:
        n = min(POOL_CHUNK, pool_size - drawn)
        chunk = torch.as_tensor(task.generate(n, int(rng.integers(2**62)))).long()
        drawn += n
        chunks.append(chunk)
        found.append(_unique_rows(chunk[_wrong(task, chunk, answers(chunk))], seen))
    pool = torch.cat(chunks)
    mistakes = torch.cat(found)
    n_pool_mistakes = int(mistakes.shape[0])
    found_wrong = [mistakes[:budget]]
    found_right: list[torch.Tensor] = []
    frontier = mistakes if n_pool_mistakes else pool[: max(1, budget)]
    near = getattr(task, "near_misses", None)
    if near is not None:
        for _ in range(NEAR_MISS_ROUNDS):
            if frontier.shape[0] == 0:
                break
            candidates = torch.as_tensor(near(frontier.repeat(2, 1), rng)).long()
            candidates = _unique_rows(candidates, seen)
            if candidates.shape[0] == 0:
                break
            cand_wrong = _wrong(task, candidates, answers(candidates))
            found_wrong.append(candidates[cand_wrong])
            found_right.append(candidates[~cand_wrong])
            # Climb along the model's errors: the next round edits the new mistakes (else all).
            frontier = candidates[cand_wrong] if cand_wrong.any() else candidates[: budget or 1]
    edge = torch.as_tensor(task.edge_cases()).long()
    wrong_rows = torch.cat(found_wrong)[:budget]
    right_budget = max(0, size - wrong_rows.shape[0] - edge.shape[0])
    right_rows = torch.cat(found_right)[:right_budget] if found_right else pool[:0]
    tokens = torch.cat([wrong_rows, right_rows, edge])
    return HardSet(
        tokens=tokens,
        n_pool_mistakes=n_pool_mistakes,
        n_near_misses=int(wrong_rows.shape[0] - min(n_pool_mistakes, budget))
        + int(right_rows.shape[0]),
        n_edge_cases=int(edge.shape[0]),
    )


_CACHE: dict[tuple[Any, ...], HardSet] = {}
_MINING: dict[tuple[Any, ...], threading.Lock] = {}
_MINING_LOCK = threading.Lock()


def cached_hard_set(
    key: tuple[Any, ...],
    task: ModuleType,
    answers: Callable[[torch.Tensor], torch.Tensor],
    *,
    seed: int,
    pool_size: int = DEFAULT_POOL,
    size: int = DEFAULT_SIZE,
) -> HardSet:
    """``mine_hard_set`` once per (model ``key``, seed, sizes) in this process: a worker verifies
    many submissions against one secret seed, and mining costs a forward pass over the pool.

    A job asking while the worker's warm-up thread mines the same set waits for it instead of
    mining it a second time beside it (on a small machine that would double the wait).
    """
    full_key = (*key, int(seed), int(pool_size), int(size))
    hard = _CACHE.get(full_key)
    if hard is not None:
        return hard
    with _MINING_LOCK:
        lock = _MINING.setdefault(full_key, threading.Lock())
    with lock:
        hard = _CACHE.get(full_key)
        if hard is None:
            if len(_CACHE) >= 32:
                _CACHE.clear()
            hard = _CACHE[full_key] = mine_hard_set(
                task, answers, seed=seed, pool_size=pool_size, size=size
            )
    with _MINING_LOCK:
        _MINING.pop(full_key, None)
    return hard
