"""Reference solution for the Caesar (easy mode) puzzle, including the model's tie-break."""

import torch

# Both heads move a bag-of-letters summary (OV) to every position; the MLP decodes the five-letter
# window to a shift. Where they read (QK: the letter weighting, query-independent) matters at every
# position but least of all paths: each query position's pattern carries only that position's
# answer, so the circuit keeps it at half of them (see writeup.md).
CIRCUIT = ["L0H0.OV", "L0H1.OV", "L0MLP", "L0H0.QK@0..11", "L0H1.QK@0..11"]

# Letter sets (lowest ciphertext letter, number of consecutive letters used) where the MLP's
# choice among the consistent shifts is not the cyclic start: measured on 6000 ambiguous texts.
# The value is the offset from the start; (0, 4) ("abcd") holds only away from the 'a' positions.
EXCEPTIONS = {(9, 1): 4, (10, 1): 4, (21, 1): 4, (1, 3): 1, (0, 4): 1}


def predict(tokens: torch.Tensor) -> torch.Tensor:
    present = torch.nn.functional.one_hot(tokens, 27)[..., :26].sum(1) > 0  # [n, 26]
    shifts = torch.arange(26)
    inside = (shifts[None, :] - shifts[:, None]) % 26 < 5  # [k, letter]: letter in k .. k+4
    consistent = ~(present[:, None, :] & ~inside[None]).any(-1)  # [n, k]
    # The consistent shifts form a cyclic interval; the model takes its cyclic start, i.e. it
    # reads the highest ciphertext letter of the run as the plaintext 'e'.
    start = (consistent & ~consistent.roll(1, dims=1)).float().argmax(-1)
    width = 6 - consistent.sum(-1)  # letters in the run: 5 -> one consistent shift
    low = (start + 5 - width) % 26
    out = start[:, None].expand(-1, tokens.shape[1]).clone()
    for (first, run), step in EXCEPTIONS.items():
        rows = (low == first) & (width == run)
        out[rows] = (start[rows, None] + step) % 26
    # "abcd": at the positions holding 'a' the own letter tips the MLP back to the start.
    own = ((low == 0) & (width == 4))[:, None] & (tokens == 0)
    out[own] = start[:, None].expand_as(out)[own]
    return out
