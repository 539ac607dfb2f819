"""Reference hypothesis (submission format v2) for the palindromes model; see writeup.md.

Layer 0 copies, at every second-half position p (11..20), the token at the mirror position 21-p
(``mirror``); L1H1 at END reads the ten per-pair comparisons and writes whether all of them match
(``is_palindrome``), which alone decides the answer.
"""

import torch

HYPOTHESIS = {
    "variables": {
        "mirror": {
            "from": ["tokens"],
            "site": "L0H0@11..20",
            "means": "x[21-p], the token at the mirror position, held at each position p = 11..20",
        },
        "is_palindrome": {
            "from": ["tokens", "mirror"],
            "site": ["L1H0@END", "L1H1@END"],
            "means": "every second-half token equals the copy of its mirror token",
        },
    },
    "answer": {"from": ["is_palindrome"]},
    "attention": [{"head": "L0H0", "query": "11..19", "key": "21-p"}],
}

CIRCUIT = ["L0H0", "L0H1", "L1H1"]


def mirror(tokens: torch.Tensor) -> torch.Tensor:
    return tokens[:, 1:11].flip(-1)  # positions 10, 9, ..., 1: the mirrors of 11..20


def is_palindrome(tokens: torch.Tensor, mirror: torch.Tensor) -> torch.Tensor:
    return (tokens[:, 11:21] == mirror).all(-1)


def answer(is_palindrome: torch.Tensor) -> torch.Tensor:
    return is_palindrome.long()[:, None]


def predict(tokens: torch.Tensor) -> torch.Tensor:
    return answer(is_palindrome(tokens, mirror(tokens)))
