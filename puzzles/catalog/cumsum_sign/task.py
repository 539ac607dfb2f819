"""Cumulative-sum sign: at each position, is the running sum of the values so far <0, =0 or >0?"""

from __future__ import annotations

import numpy as np
import torch

MAX_VALUE = 5
VOCAB: list[str] = [str(v) for v in range(-MAX_VALUE, MAX_VALUE + 1)]  # token id = value + 5
SEQ_LEN = 20
ANSWER_POSITIONS: list[int] = list(range(SEQ_LEN))
CLASSES: list[str] = ["negative", "zero", "positive"]


def values(tokens) -> torch.Tensor:
    return torch.as_tensor(tokens) - MAX_VALUE


def generate(n: int, seed: int) -> torch.LongTensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, len(VOCAB), size=(n, SEQ_LEN), dtype=np.int64))


def labels(tokens) -> torch.LongTensor:
    return torch.sign(values(tokens).cumsum(-1)).long() + 1


def edge_cases() -> torch.LongTensor:
    """Sums that hover around zero late in the sequence, and long runs of one sign."""
    rows = [
        [1, -1] * 10,
        [5, -5] * 10,
        [1] * 15 + [-5, 1, 1, 1, -3],
        [0] * 20,
        [-1] * 10 + [1] * 10,
        [5] * 4 + [-1] * 16,
        [3, -2, -1] * 6 + [1, -1],
        [-5, 5, 0, 0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 1, 0, -1, 0, 1, -1],
    ]
    return torch.tensor(rows, dtype=torch.long) + MAX_VALUE


def near_misses(tokens, rng: np.random.Generator) -> torch.LongTensor:
    """One edited value per row (the hard set's single-token neighbours)."""
    out = torch.as_tensor(tokens).numpy().copy()
    rows = np.arange(out.shape[0])
    cols = rng.integers(0, SEQ_LEN, size=out.shape[0])
    out[rows, cols] = (out[rows, cols] + rng.integers(1, len(VOCAB), size=out.shape[0])) % len(
        VOCAB
    )
    return torch.from_numpy(out)
