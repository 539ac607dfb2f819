"""Reference solution for the palindromes puzzle (the submission format of DESIGN.md section 3)."""

import torch

# The model answers at END; L0H0/L0H1 copy each token's mirror image into the second half,
# L1H1 aggregates the per-pair "match" signals at END.
CIRCUIT = ["L0H0", "L0H1", "L1H1"]


def predict(tokens: torch.Tensor) -> torch.Tensor:
    body = tokens[:, 1:-1]
    return (body == body.flip(-1)).all(-1).long()
