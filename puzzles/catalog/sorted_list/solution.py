"""Reference solution for the sorted-list puzzle."""

import torch

# Both layer-0 heads attend to the smallest list number above the current one and copy it.
CIRCUIT = ["L0H0", "L0H1"]


def predict(tokens: torch.Tensor) -> torch.Tensor:
    return tokens[:, :10].sort(-1).values
