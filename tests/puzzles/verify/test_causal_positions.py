"""Interchange accuracy is measured per answer position: on a multi-position toy whose model always
gets one constant position wrong, the positions that follow the intervention still score 1.0 (the
old whole-sequence rule scored every pair 0), and a single-position puzzle keeps pair-level numbers."""

from __future__ import annotations

import torch

from puzzles.verify.causal_check import CausalJob, _interchange, settings
from puzzles.verify.hypothesis import Hypothesis, Site, Variable

N, CLASSES = 64, 5


class _ToyModel:
    """Answers ``x[source]`` at the first ``k - 1`` positions and ``last(base, source)`` at the last."""

    def __init__(self, x: torch.Tensor, k: int, last) -> None:
        self.x, self.k, self.last = x, k, last

    def logits(self, base: torch.Tensor, patches) -> torch.Tensor:
        answers = self.x[patches[0].sources][:, None].repeat(1, self.k)
        answers[:, -1] = self.last(base, patches[0].sources)
        return torch.nn.functional.one_hot(answers, CLASSES).float()


def _run(k: int, last):
    x = torch.arange(N) % 4 + 1  # the variable's value on each pool input, classes 1..4
    site = Site(kind="head", layer=0, head=0, positions=(1,))
    hyp = Hypothesis([Variable("x", ("tokens",), (site,), "x")], ("x",))
    pairs = torch.stack([torch.arange(N), (torch.arange(N) + 1 + torch.arange(N) % 3) % N], 1)
    job = CausalJob(hyp, torch.zeros(N, 2, dtype=torch.long), [("x",)], [pairs], k, CLASSES)

    def algorithm(values: torch.Tensor) -> torch.Tensor:  # x at every position but the last: 0
        out = values[:, None].repeat(1, k)
        if k > 1:
            out[:, -1] = 0
        return out

    tensors = {
        "answer": algorithm(x),
        "value.x": x[:, None].double(),
        "cf.0": algorithm(x[pairs[:, 1]]),
    }
    cfg = settings({"causal_min_changed": 4})
    return _interchange(
        _ToyModel(x, k, last), job, 0, tensors, cfg, torch.Generator().manual_seed(0)
    )


def test_one_wrong_position_does_not_zero_the_pairs() -> None:
    row = _run(4, lambda base, source: torch.ones_like(base))  # the last position is always wrong
    assert row["iia_where_answer_changes"] == 1.0  # the three intervened positions all follow
    assert row["iia_where_answer_stays"] == 0.0  # the always-wrong position, counted alone
    assert row["iia"] == 0.5
    assert row["pairs_answer_changes"] == N


def test_single_position_scores_whole_pairs() -> None:
    x_source = lambda base, source: torch.where(base % 2 == 0, source % 4 + 1, 0)  # noqa: E731
    row = _run(1, x_source)
    # one position: a cell is a pair; here the model follows the source on even bases only
    assert row["iia_where_answer_stays"] is None
    assert row["iia"] == row["iia_where_answer_changes"]
    assert 0.0 < row["iia"] < 1.0
