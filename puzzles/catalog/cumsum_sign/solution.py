"""Reference solution for the cumulative-sum sign puzzle (see writeup.md)."""

import torch

# The head averages the prefix (the mean has the sign of the sum); the MLP thresholds it. Where
# the head reads is no input's business: its pattern spreads evenly over the prefix whatever the
# values, so its QK path is left out (replaced by its mean pattern, faithfulness stays 0.98).
CIRCUIT = ["L0H0.OV", "L0MLP"]


def predict(tokens: torch.Tensor) -> torch.Tensor:
    # One boundary and no zero band, so the model never answers "zero" (class 1). The boundary
    # sits just above a mean of zero from position 1 on, so a running sum of exactly zero reads
    # as negative (class 0); at position 0 it sits just below, so a first value of 0 reads positive.
    running = (tokens - 5).cumsum(-1)
    positive = running > 0
    positive[:, 0] = running[:, 0] >= 0
    return positive.long() * 2
