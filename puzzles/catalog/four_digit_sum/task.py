"""4-digit sum: ``a+b=`` then the 5 digits of the sum, most significant first (teacher forcing)."""

from __future__ import annotations

import numpy as np
import torch

PLUS, EQUALS = 10, 11
VOCAB: list[str] = [str(d) for d in range(10)] + ["+", "="]
SEQ_LEN = 14  # a0 a1 a2 a3 + b0 b1 b2 b3 = s0 s1 s2 s3 (s4 is only ever predicted)
ANSWER_POSITIONS: list[int] = [9, 10, 11, 12, 13]  # "=" and s0..s3 predict s0..s4
CLASSES: list[str] = [str(d) for d in range(10)]


def _digits(x: np.ndarray, width: int) -> np.ndarray:
    return np.stack([(x // 10 ** (width - 1 - i)) % 10 for i in range(width)], axis=1)


def encode(a: np.ndarray, b: np.ndarray) -> torch.LongTensor:
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    n = a.shape[0]
    out = np.empty((n, SEQ_LEN), dtype=np.int64)
    out[:, 0:4] = _digits(a, 4)
    out[:, 4] = PLUS
    out[:, 5:9] = _digits(b, 4)
    out[:, 9] = EQUALS
    out[:, 10:14] = _digits(a + b, 5)[:, :4]
    return torch.from_numpy(out)


def operands(tokens) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.as_tensor(tokens)
    weights = torch.tensor([1000, 100, 10, 1])
    return (t[:, 0:4] * weights).sum(-1), (t[:, 5:9] * weights).sum(-1)


def generate(n: int, seed: int) -> torch.LongTensor:
    rng = np.random.default_rng(seed)
    return encode(rng.integers(0, 10_000, size=n), rng.integers(0, 10_000, size=n))


def labels(tokens) -> torch.LongTensor:
    a, b = operands(tokens)
    s = a + b
    return torch.stack([(s // 10 ** (4 - i)) % 10 for i in range(5)], dim=1)


def edge_cases() -> torch.LongTensor:
    """Carry chains of every length, no carries at all, and the largest sums."""
    pairs = [
        (9999, 1), (4999, 5001), (5000, 5000), (1234, 4321), (9999, 9999), (999, 1),
        (99, 1), (9, 1), (1, 9999), (5555, 4445), (9090, 910), (0, 0), (4567, 5433),
        (8888, 1112), (1999, 8000), (3456, 6543),
    ]  # fmt: skip
    a, b = zip(*pairs, strict=True)
    return encode(np.array(a), np.array(b))


def near_misses(tokens, rng: np.random.Generator) -> torch.LongTensor:
    """One operand digit per row changed, the sum digits re-derived (single-token neighbours)."""
    t = torch.as_tensor(tokens).numpy().copy()
    rows = np.arange(t.shape[0])
    cols = rng.choice([0, 1, 2, 3, 5, 6, 7, 8], size=t.shape[0])
    t[rows, cols] = (t[rows, cols] + rng.integers(1, 10, size=t.shape[0])) % 10
    a, b = operands(torch.from_numpy(t))
    return encode(a.numpy(), b.numpy())
