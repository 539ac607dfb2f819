"""Reference solution for the cumulative-sum sign puzzle."""

import torch

# The head averages the prefix (mean has the sign of the sum); the MLP thresholds it.
CIRCUIT = ["L0H0", "L0MLP"]


def predict(tokens: torch.Tensor) -> torch.Tensor:
    running = (tokens - 5).cumsum(-1)
    return torch.sign(running).long() + 1
