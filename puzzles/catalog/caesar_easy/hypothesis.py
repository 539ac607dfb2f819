"""Reference hypothesis (submission format v2) for the Caesar (easy) model; see writeup.md.

Two steps in one layer. Both heads attend by the key's letter, not by position, so every position
receives the same bag of ciphertext letters (``letters``: which of the 26 letters occur). The MLP
turns that bag into the shift (``shift``): the start of the cyclic run of consistent shifts, with
the measured exceptions of solution.py, and at the 'a' positions of an "abcd" text the own letter
tips it back. The answer at every position is ``shift``.
"""

import torch

HYPOTHESIS = {
    "variables": {
        "letters": {
            "from": ["tokens"],
            "site": ["L0H0@0..23", "L0H1@0..23"],
            "means": "which ciphertext letters occur, the same at every position",
        },
        "shift": {
            "from": ["letters", "tokens"],
            "site": "L0MLP@0..23",
            "means": "the shift read off the letter window, at every position",
        },
    },
    "answer": {"from": ["shift"]},
}

CIRCUIT = ["L0H0.OV", "L0H1.OV", "L0MLP", "L0H0.QK@0..11", "L0H1.QK@0..11"]  # as in solution.py

# (lowest ciphertext letter of the run, letters in the run) -> offset from the cyclic start
EXCEPTIONS = {(9, 1): 4, (10, 1): 4, (21, 1): 4, (1, 3): 1, (0, 4): 1}


def letters(tokens: torch.Tensor) -> torch.Tensor:
    return (torch.nn.functional.one_hot(tokens, 27)[..., :26].sum(1) > 0).float()  # [n, 26]


def shift(letters: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    present = letters > 0
    shifts = torch.arange(26)
    inside = (shifts[None, :] - shifts[:, None]) % 26 < 5  # [k, letter]: letter in k .. k+4
    consistent = ~(present[:, None, :] & ~inside[None]).any(-1)  # [n, k]
    start = (consistent & ~consistent.roll(1, dims=1)).float().argmax(-1)
    width = 6 - consistent.sum(-1)
    low = (start + 5 - width) % 26
    out = start[:, None].expand(-1, tokens.shape[1]).clone()
    for (first, run), step in EXCEPTIONS.items():
        rows = (low == first) & (width == run)
        out[rows] = (start[rows, None] + step) % 26
    own = ((low == 0) & (width == 4))[:, None] & (tokens == 0)
    out[own] = start[:, None].expand_as(out)[own]
    return out


def answer(shift: torch.Tensor) -> torch.Tensor:
    return shift


def predict(tokens: torch.Tensor) -> torch.Tensor:
    return answer(shift(letters(tokens), tokens))
