"""Reference solution for the Caesar (easy mode) puzzle, including the model's tie-break."""

import torch

# Both heads build a bag-of-letters summary; the MLP decodes the five-letter window to a shift.
CIRCUIT = ["L0H0", "L0H1", "L0MLP"]


def predict(tokens: torch.Tensor) -> torch.Tensor:
    letters = torch.nn.functional.one_hot(tokens, 27)[..., :26].sum(1) > 0  # [n, 26] present
    shifts = torch.arange(26)
    # shift k is consistent when every present letter lies in the window k .. k+4 (mod 26)
    offsets = (shifts[None, :] - shifts[:, None]) % 26  # [k, letter]
    inside = offsets < 5
    consistent = ~(letters[:, None, :] & ~inside[None]).any(-1)  # [n, k]
    # Unambiguous texts have one consistent shift. Ambiguous ones have a cyclic interval of
    # them: the model takes the smallest shift number, except when the interval wraps past 0 and
    # holds 3 or more shifts, where it takes the interval's cyclic start (e.g. 22 for "aaaa...").
    start = consistent & ~consistent.roll(1, dims=1)
    wraps = consistent[:, 0] & consistent[:, 25]
    long_wrap = wraps & (consistent.sum(-1) >= 3)
    smallest = consistent.float().argmax(-1)
    choice = torch.where(long_wrap, start.float().argmax(-1), smallest)
    return choice[:, None].expand(-1, tokens.shape[1]).clone()
