"""Palindromes: is the list of 20 ints (0-30) between START and END a palindrome? Read at END."""

from __future__ import annotations

import numpy as np
import torch

HALF = 10
N_VALUES = 31
START, END = N_VALUES, N_VALUES + 1
VOCAB: list[str] = [str(i) for i in range(N_VALUES)] + ["START", "END"]
SEQ_LEN = 2 * HALF + 2
ANSWER_POSITIONS: list[int] = [SEQ_LEN - 1]
CLASSES: list[str] = ["not palindrome", "palindrome"]


def _wrap(body: np.ndarray) -> torch.LongTensor:
    n = body.shape[0]
    out = np.empty((n, SEQ_LEN), dtype=np.int64)
    out[:, 0] = START
    out[:, 1:-1] = body
    out[:, -1] = END
    return torch.from_numpy(out)


def generate(n: int, seed: int) -> torch.LongTensor:
    """Half palindromes; the other half mostly near-misses (1-3 mismatched pairs), some random."""
    rng = np.random.default_rng(seed)
    left = rng.integers(0, N_VALUES, size=(n, HALF))
    body = np.concatenate([left, left[:, ::-1]], axis=1)
    kind = rng.random(n)
    for i in np.flatnonzero(kind >= 0.5):
        if kind[i] >= 0.9:
            body[i] = rng.integers(0, N_VALUES, size=2 * HALF)
            continue
        n_bad = rng.choice([1, 1, 1, 2, 3])
        for pair in rng.choice(HALF, size=n_bad, replace=False):
            side = HALF + pair if rng.random() < 0.5 else HALF - 1 - pair
            body[i, side] = (body[i, side] + rng.integers(1, N_VALUES)) % N_VALUES
    return _wrap(body)


def labels(tokens) -> torch.LongTensor:
    body = torch.as_tensor(tokens)[:, 1:-1]
    return (body == body.flip(-1)).all(-1).long()[:, None]


def edge_cases() -> torch.LongTensor:
    """Exactly one mismatched pair at every pair distance, plus constant and all-distinct lists."""
    rows = []
    base = np.array([3, 14, 15, 9, 26, 5, 30, 8, 0, 7])
    for pair in range(HALF):
        body = np.concatenate([base, base[::-1]])
        body[HALF + pair] = (body[HALF + pair] + 1) % N_VALUES
        rows.append(body)
        body = np.concatenate([base, base[::-1]])
        body[HALF - 1 - pair] = (body[HALF - 1 - pair] + 17) % N_VALUES
        rows.append(body)
    rows.append(np.full(2 * HALF, 4))
    rows.append(np.concatenate([base, base[::-1]]))
    rows.append(np.arange(2 * HALF))
    rows.append(np.concatenate([np.full(HALF, 1), np.full(HALF, 2)]))
    return _wrap(np.stack(rows))


def near_misses(tokens, rng: np.random.Generator) -> torch.LongTensor:
    """One edited list element per row (the hard set's single-token neighbours)."""
    body = torch.as_tensor(tokens)[:, 1:-1].numpy().copy()
    rows = np.arange(body.shape[0])
    cols = rng.integers(0, 2 * HALF, size=body.shape[0])
    body[rows, cols] = (body[rows, cols] + rng.integers(1, N_VALUES, size=body.shape[0])) % N_VALUES
    return _wrap(body)
