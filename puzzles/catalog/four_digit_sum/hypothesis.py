"""Reference hypothesis (submission format v2) for the 4-digit-sum model; see writeup.md.

Layer 0 forms each digit pair's sum ``a_k + b_k`` (0..18) where its heads attend to both digits of
the pair: at the pair's own b-digit position (5 + k), read later by layer 1, and at the answer
positions that need it (the pair producing the digit and the pair below it). The answer is
ordinary addition whose carry into a pair looks at most two pairs down (``answer``).
"""

import torch

HYPOTHESIS = {
    "variables": {
        "pair0": {
            "from": ["tokens"],
            "site": ["resid_post L0 @ 5", "L0H0@9", "L0H2@9", "L0H0@10", "L0H1@10", "L0H2@10"],
            "means": "a0 + b0, the leading pair's digit sum",
        },
        "pair1": {
            "from": ["tokens"],
            "site": ["resid_post L0 @ 6", "L0H1@9", "L0H0@11", "L0H2@11"],
            "means": "a1 + b1",
        },
        "pair2": {
            "from": ["tokens"],
            "site": ["resid_post L0 @ 7", "L0H1@11", "L0H1@12", "L0H2@12"],
            "means": "a2 + b2",
        },
        "pair3": {
            "from": ["tokens"],
            "site": ["resid_post L0 @ 8", "L0H0@12", "L0H0@13", "L0H2@13"],
            "means": "a3 + b3, the last pair's digit sum",
        },
    },
    "answer": {"from": ["pair0", "pair1", "pair2", "pair3"]},
    # at s0 (predicting s1), L1H1 reads the '=' position, where layer 0 put pairs 0 and 1
    "attention": [{"head": "L1H1", "query": "10", "key": "p-1"}],
}


def _pair(tokens: torch.Tensor, k: int) -> torch.Tensor:
    return tokens[:, k] + tokens[:, 5 + k]


def pair0(tokens: torch.Tensor) -> torch.Tensor:
    return _pair(tokens, 0)


def pair1(tokens: torch.Tensor) -> torch.Tensor:
    return _pair(tokens, 1)


def pair2(tokens: torch.Tensor) -> torch.Tensor:
    return _pair(tokens, 2)


def pair3(tokens: torch.Tensor) -> torch.Tensor:
    return _pair(tokens, 3)


def answer(pair0, pair1, pair2, pair3) -> torch.Tensor:
    pair = torch.stack([pair0, pair1, pair2, pair3], 1)

    def carry_into(k: int) -> torch.Tensor:  # a carry rippling through two 9-pairs is lost
        carry = torch.zeros_like(pair0)
        for q in reversed(range(k + 1, min(k + 3, 4))):
            carry = (pair[:, q] + carry >= 10).long()
        return carry

    digits = [(pair[:, 0] + carry_into(0) >= 10).long()]
    digits += [(pair[:, k] + carry_into(k)) % 10 for k in range(4)]
    return torch.stack(digits, 1)


def predict(tokens: torch.Tensor) -> torch.Tensor:
    return answer(*(_pair(tokens, k) for k in range(4)))
