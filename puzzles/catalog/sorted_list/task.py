"""Sorted list: after SEP, output the 10 distinct input numbers (0-49) in increasing order."""

from __future__ import annotations

import numpy as np
import torch

LIST_LEN = 10
N_VALUES = 50
SEP = N_VALUES
VOCAB: list[str] = [str(i) for i in range(N_VALUES)] + ["SEP"]
SEQ_LEN = 2 * LIST_LEN  # list, SEP, then the first 9 sorted numbers (teacher forcing)
ANSWER_POSITIONS: list[int] = list(range(LIST_LEN, 2 * LIST_LEN))  # SEP .. 9th sorted number
CLASSES: list[str] = [str(i) for i in range(N_VALUES)]


def _assemble(lists: np.ndarray) -> torch.LongTensor:
    n = lists.shape[0]
    out = np.empty((n, SEQ_LEN), dtype=np.int64)
    out[:, :LIST_LEN] = lists
    out[:, LIST_LEN] = SEP
    out[:, LIST_LEN + 1 :] = np.sort(lists, axis=1)[:, : LIST_LEN - 1]
    return torch.from_numpy(out)


def generate(n: int, seed: int) -> torch.LongTensor:
    rng = np.random.default_rng(seed)
    lists = np.argsort(rng.random((n, N_VALUES)), axis=1)[:, :LIST_LEN]
    return _assemble(lists)


def labels(tokens) -> torch.LongTensor:
    return torch.as_tensor(tokens)[:, :LIST_LEN].sort(-1).values


def edge_cases() -> torch.LongTensor:
    """Consecutive runs (no gaps), the extremes, and wide gaps."""
    rows = [
        np.arange(10)[::-1],
        np.arange(40, 50),
        np.array([0, 49, 1, 48, 2, 47, 3, 46, 4, 45]),
        np.array([20, 21, 22, 23, 24, 25, 26, 27, 28, 29]),
        np.array([0, 5, 10, 15, 20, 25, 30, 35, 40, 45]),
        np.array([7, 8, 30, 31, 32, 9, 10, 33, 34, 11]),
    ]
    return _assemble(np.stack(rows))


def near_misses(tokens, rng: np.random.Generator) -> torch.LongTensor:
    """One list number per row replaced by a number not in the list (re-sorted after SEP)."""
    lists = torch.as_tensor(tokens)[:, :LIST_LEN].numpy().copy()
    for row in lists:
        free = np.setdiff1d(np.arange(N_VALUES), row)
        row[rng.integers(0, LIST_LEN)] = rng.choice(free)
    return _assemble(lists)
