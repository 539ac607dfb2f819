"""First unique character: at each position, the first char (a-j) seen exactly once so far, or '?'."""

from __future__ import annotations

import numpy as np
import torch

LETTERS = "abcdefghij"
BOS = 0
VOCAB: list[str] = ["<s>", *LETTERS]  # token id = letter index + 1
SEQ_LEN = 20
ANSWER_POSITIONS: list[int] = list(range(1, SEQ_LEN))
CLASSES: list[str] = ["?", *LETTERS]  # class id = letter index + 1, 0 = no unique letter yet


def generate(n: int, seed: int) -> torch.LongTensor:
    """Each sequence draws its letters from a random alphabet of 2-10 letters (repeats are common)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, len(LETTERS) + 1, size=n)
    perms = np.argsort(rng.random((n, len(LETTERS))), axis=1)
    picks = (rng.random((n, SEQ_LEN - 1)) * sizes[:, None]).astype(np.int64)
    letters = np.take_along_axis(perms, picks, axis=1) + 1
    out = np.concatenate([np.full((n, 1), BOS, dtype=np.int64), letters], axis=1)
    return torch.from_numpy(out)


def labels(tokens) -> torch.LongTensor:
    tokens = torch.as_tensor(tokens)
    chars = tokens[:, 1:]
    onehot = torch.nn.functional.one_hot(chars, len(VOCAB))  # [n, s, v]
    counts = onehot.cumsum(1)  # counts[:, p, c]: occurrences of c in chars[: p + 1]
    # unique_at[:, p, j]: chars[:, j] occurs exactly once in chars[: p + 1] (and j <= p)
    unique_at = torch.gather(counts, 2, chars[:, None, :].expand(-1, chars.shape[1], -1)) == 1
    steps = torch.arange(chars.shape[1])
    unique_at &= steps[None, None, :] <= steps[None, :, None]
    has = unique_at.any(-1)
    first = unique_at.float().argmax(-1)
    answer = torch.gather(chars, 1, first)
    return torch.where(has, answer, torch.zeros_like(answer))


def edge_cases() -> torch.LongTensor:
    """Hand-picked strings: a unique letter hiding behind many repeats, all repeats, all distinct."""
    words = [
        "aabbccddeeffgghhiij",
        "abababababababababc",
        "abcdefghijabcdefghi",
        "jjjjjjjjjjjjjjjjjja",
        "abcabcabcabcabcabcd",
        "aaaaaaaaabbbbbbbbbc",
        "hijhijhijhijhijhijh",
        "abcdefghijjihgfedcb",
    ]
    rows = [[BOS] + [LETTERS.index(ch) + 1 for ch in w] for w in words]
    return torch.tensor(rows, dtype=torch.long)


def near_misses(tokens, rng: np.random.Generator) -> torch.LongTensor:
    """One edited letter per row (the hard set's single-token neighbours)."""
    out = torch.as_tensor(tokens).numpy().copy()
    rows = np.arange(out.shape[0])
    cols = rng.integers(1, SEQ_LEN, size=out.shape[0])
    shift = rng.integers(1, len(LETTERS), size=out.shape[0])
    out[rows, cols] = (out[rows, cols] - 1 + shift) % len(LETTERS) + 1
    return torch.from_numpy(out)
