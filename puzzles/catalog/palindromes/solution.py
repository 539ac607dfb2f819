"""Reference solution for the palindromes puzzle (the submission format of DESIGN.md section 3)."""

import torch

# The model answers at END; L0H0/L0H1 copy each token's mirror image into the second half,
# L1H1 aggregates the per-pair "match" signals at END.
CIRCUIT = ["L0H0@1,11,12,13,14,15,16,17,18,19,20", "L0H1@14,END", "L1H0@END", "L1H1@END"]


def predict(tokens: torch.Tensor) -> torch.Tensor:
    body = tokens[:, 1:-1]
    return (body == body.flip(-1)).all(-1).long()
