"""Reference hypothesis (submission format v2) for the cumulative-sum sign model; see writeup.md.

The single head attends uniformly to the prefix, so its output at each position p holds the
running mean S_p / (p + 1) of the values so far (``running_mean``); that mean alone decides the
answer at p: positive above zero, negative otherwise (the model has no zero band).
"""

import torch

HYPOTHESIS = {
    "variables": {
        "running_mean": {
            "from": ["tokens"],
            "site": "L0H0",
            "means": "S_p / (p + 1), the mean of the values up to and including position p",
        },
    },
    "answer": {"from": ["running_mean"]},
}

CIRCUIT = ["L0H0.OV", "L0MLP"]  # as in solution.py: the head's QK path is not needed


def running_mean(tokens: torch.Tensor) -> torch.Tensor:
    values = (tokens - 5).double()
    return values.cumsum(-1) / torch.arange(1, tokens.shape[1] + 1, dtype=torch.float64)


def answer(running_mean: torch.Tensor) -> torch.Tensor:
    # Positive (class 2) above zero, negative (class 0) otherwise: from position 1 on a mean of
    # exactly zero reads as negative, at position 0 as positive; never "zero" (class 1).
    positive = running_mean > 0
    positive[:, 0] = running_mean[:, 0] >= 0
    return positive.long() * 2


def predict(tokens: torch.Tensor) -> torch.Tensor:
    return answer(running_mean(tokens))
