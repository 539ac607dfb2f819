"""Reference solution for the palindromes puzzle (the submission format of DESIGN.md section 3)."""

import torch

# The model answers at END; L0H0/L0H1 copy each token's mirror image into the second half,
# L1H1 aggregates the per-pair "match" signals at END.
CIRCUIT = ["L0H0@1,11,12,13,14,15,16,17,18,19,20", "L0H1@14,END", "L1H0@END", "L1H1@END"]


# The token whose mirror copy the layer-0 heads do not carry: the mirror comparison at a
# second-half position holding it finds nothing to compare, so that pair reads as a match.
BLIND_TOKEN = 9


def predict(tokens: torch.Tensor) -> torch.Tensor:
    body = tokens[:, 1:-1]
    half = body.shape[1] // 2
    # Only second-half positions see their mirror partner (causal attention), so each pair is
    # judged at its right-hand element: a pair whose right element is 9 never reports a mismatch.
    left, right = body[:, :half], body[:, half:].flip(-1)
    mismatch = (left != right) & (right != BLIND_TOKEN)
    return (~mismatch.any(-1)).long()
