"""Reference solution for the 4-digit sum puzzle: addition with a two-pair carry lookahead."""

import torch

CIRCUIT = [
    "L0H0@7,8,9,10,11,12,13",
    "L0H1@7,8,9,10,11,12",
    "L0H2@6,7,8,9,10,11,13",
    "L1H0@9,10,11,12",
    "L1H1@10,11,12,13",
    "L1H2@10,11,12,13",
]


def predict(tokens: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor([1000, 100, 10, 1])
    a = (tokens[:, 0:4] * weights).sum(-1)
    b = (tokens[:, 5:9] * weights).sum(-1)
    pair = torch.stack([(a // 10 ** (3 - i)) % 10 + (b // 10 ** (3 - i)) % 10 for i in range(4)], 1)

    def carry_into(k: int) -> torch.Tensor:
        # The model looks at most two digit pairs below pair k: a carry that has to ripple
        # through two pairs summing to 9 is lost.
        carry = torch.zeros_like(a)
        for q in reversed(range(k + 1, min(k + 3, 4))):
            carry = (pair[:, q] + carry >= 10).long()
        return carry

    digits = [(pair[:, 0] + carry_into(0) >= 10).long()]
    digits += [(pair[:, k] + carry_into(k)) % 10 for k in range(4)]
    return torch.stack(digits, 1)
