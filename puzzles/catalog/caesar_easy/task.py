"""Caesar cipher: predict the shift (0-25) at every position of a ciphertext.

Modes (``MODE``): ``easy`` plaintexts use only the letters a-e; ``medium`` draws letters with
English frequencies and keeps spaces; ``hard`` is medium with plaintexts of common words. This
entry ships the easy model; the generator supports all three so new entries can reuse it.
"""

from __future__ import annotations

import numpy as np
import torch

MODE = "easy"
ALPHABET = "abcdefghijklmnopqrstuvwxyz"
SPACE = 26
VOCAB: list[str] = [*ALPHABET, " "]
SEQ_LEN = 24
ANSWER_POSITIONS: list[int] = list(range(SEQ_LEN))
CLASSES: list[str] = [str(k) for k in range(26)]

_FREQ = np.array(
    [8.2, 1.5, 2.8, 4.3, 12.7, 2.2, 2.0, 6.1, 7.0, 0.15, 0.77, 4.0, 2.4,
     6.7, 7.5, 1.9, 0.095, 6.0, 6.3, 9.1, 2.8, 0.98, 2.4, 0.15, 2.0, 0.074]
)  # fmt: skip
_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "have",
    "from",
]


def _plaintext(rng: np.random.Generator, n: int, mode: str) -> np.ndarray:
    if mode == "easy":
        return rng.integers(0, 5, size=(n, SEQ_LEN))
    if mode == "medium":
        letters = rng.choice(26, size=(n, SEQ_LEN), p=_FREQ / _FREQ.sum())
        return np.where(rng.random((n, SEQ_LEN)) < 0.18, SPACE, letters)
    if mode == "hard":
        rows = []
        for _ in range(n):
            text = " ".join(rng.choice(_WORDS, size=SEQ_LEN))[:SEQ_LEN]
            rows.append([SPACE if ch == " " else ALPHABET.index(ch) for ch in text])
        return np.array(rows, dtype=np.int64)
    raise ValueError(f"unknown mode {mode!r}")


def encrypt(plain: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    return np.where(plain == SPACE, SPACE, (plain + shifts[:, None]) % 26)


def generate(n: int, seed: int, mode: str = MODE) -> torch.LongTensor:
    rng = np.random.default_rng(seed)
    shifts = rng.integers(0, 26, size=n)
    plain = _plaintext(rng, n, mode)
    # The shift is recoverable from the ciphertext alone only through letter statistics, so it
    # is stored nowhere; labels() recovers it by brute force against the mode's plaintext model.
    cipher = encrypt(plain, shifts)
    return torch.from_numpy(cipher.astype(np.int64))


def _shift_scores(tokens: torch.Tensor, mode: str) -> torch.Tensor:
    """Log-likelihood of each shift under the mode's plaintext distribution: [n, 26]."""
    t = torch.as_tensor(tokens)
    letters = torch.nn.functional.one_hot(t, 27)[..., :26].sum(1).double()  # [n, 26] counts
    if mode == "easy":
        logp = torch.full((26,), -1e9, dtype=torch.float64)
        logp[:5] = 0.0
    else:
        logp = torch.log(torch.as_tensor(_FREQ / _FREQ.sum()))
    scores = torch.stack([(letters * torch.roll(logp, k)).sum(-1) for k in range(26)], dim=-1)
    return scores


def labels(tokens, mode: str = MODE) -> torch.LongTensor:
    """The most likely shift for the whole ciphertext (ties: the smallest shift), at every position.

    In easy mode this is the true shift unless a plaintext never uses 'a' or 'e' and the text is
    genuinely ambiguous.
    """
    best = _shift_scores(tokens, mode).argmax(-1)
    return best[:, None].expand(-1, SEQ_LEN).clone()


def edge_cases() -> torch.LongTensor:
    rng = np.random.default_rng(7)
    plain = rng.integers(0, 5, size=(6, SEQ_LEN))
    plain[0] = 0  # a single repeated letter: ambiguous among 5 shifts
    plain[1] = np.tile([1, 2, 3], SEQ_LEN // 3)  # no 'a', no 'e': ambiguous among 3 shifts
    plain[2] = np.tile([0, 4], SEQ_LEN // 2)  # only the extremes
    shifts = np.array([0, 25, 13, 21, 22, 3])
    return torch.from_numpy(encrypt(plain, shifts).astype(np.int64))


def near_misses(tokens, rng: np.random.Generator) -> torch.LongTensor:
    """One letter per row replaced by its alphabet neighbour (the hard set's single-token edits):
    it widens or narrows the window of letters used, the edge of the shift decision."""
    out = torch.as_tensor(tokens).numpy().copy()
    rows = np.arange(out.shape[0])
    cols = rng.integers(0, SEQ_LEN, size=out.shape[0])
    step = rng.choice([-1, 1], size=out.shape[0])
    letter = out[rows, cols] != SPACE
    out[rows, cols] = np.where(letter, (out[rows, cols] + step) % 26, out[rows, cols])
    return torch.from_numpy(out)
