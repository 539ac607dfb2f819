"""Reference solution for the sorted-list puzzle."""

import torch

# Both layer-0 heads attend to the smallest list number above the current one and copy it.
CIRCUIT = ["L0H0@10,12,13,14,15,16,17,19", "L0H1@10,11,12,13,14,17,18"]


def predict(tokens: torch.Tensor) -> torch.Tensor:
    return tokens[:, :10].sort(-1).values
