"""Reference hypothesis (submission format v2) for the sorted-list model; see writeup.md.

One attention step does the job: at each answer position the two layer-0 heads find the smallest
list number above the query's own number and copy it. At SEP (position 10) that is the list's
minimum (``first``); at the sorted positions 11..19 it is the successor of the number held there
(``successors``). The answer is ``first`` followed by ``successors``.
"""

import torch

HYPOTHESIS = {
    "variables": {
        "first": {
            "from": ["tokens"],
            "site": ["L0H0@10", "L0H1@10"],
            "means": "the smallest list number, found by both heads at SEP (position 10)",
        },
        "successors": {
            "from": ["tokens"],
            "site": ["L0H0@11..19", "L0H1@11..19"],
            "means": "at each sorted position p, the smallest list number above tokens[p]",
        },
    },
    "answer": {"from": ["first", "successors"]},
}

CIRCUIT = ["L0H0@10,12,13,14,15,16,17,19", "L0H1@10,11,12,13,14,17,18"]


def first(tokens: torch.Tensor) -> torch.Tensor:
    return tokens[:, :10].min(-1, keepdim=True).values


def successors(tokens: torch.Tensor) -> torch.Tensor:
    numbers, current = tokens[:, None, :10], tokens[:, 11:20, None]  # [n, 1, 10], [n, 9, 1]
    above = torch.where(numbers > current, numbers, torch.full_like(numbers, 10**6))
    return above.min(-1).values  # [n, 9]


def answer(first: torch.Tensor, successors: torch.Tensor) -> torch.Tensor:
    return torch.cat([first, successors], -1)


def predict(tokens: torch.Tensor) -> torch.Tensor:
    return answer(first(tokens), successors(tokens))
