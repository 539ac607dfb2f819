"""The replication check's public/private split behind Kaggle-style leaderboards."""

from __future__ import annotations

import torch

from puzzles.verify.checks import replication_check


def test_public_half_plus_edge_cases_and_private_half_are_scored_apart() -> None:
    # 8 held-out rows then 2 edge cases; predict is right on the public half only.
    model = torch.zeros(10, 1, dtype=torch.long)
    predictions = model.clone()
    predictions[4:8] = 1  # the private half (rows 4..7) all disagree
    result = replication_check(
        predictions=predictions,
        model_answers=model,
        labels=model,
        n_heldout=8,
        config={"replication_threshold": 0.5},
    )
    assert result.details["agreement_public"] == 1.0  # rows 0..3 and the 2 edge cases
    assert result.details["agreement_private"] == 0.0
    assert abs(result.score - 0.6) < 1e-6


def test_without_a_held_out_set_there_is_no_private_score() -> None:
    answers = torch.zeros(3, 2, dtype=torch.long)
    result = replication_check(
        predictions=answers, model_answers=answers, labels=answers, n_heldout=0, config={}
    )
    assert result.details["agreement_private"] is None
    assert result.details["agreement_public"] == 1.0
