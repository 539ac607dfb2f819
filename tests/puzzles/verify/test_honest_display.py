"""A failed check never prints a value that reads as meeting its threshold."""

from __future__ import annotations

import random
import re

import torch

from puzzles.verify.checks import replication_check
from puzzles.verify.verdict import format_vs_threshold


def _number(text: str) -> float:
    return float(text.rstrip("%"))


def test_palindromes_seed_119_case_reads_as_a_failure() -> None:
    assert format_vs_threshold(0.9896, 0.99, percent=True) == ("98.96%", "99.00%")
    assert format_vs_threshold(0.995, 0.99, percent=True) == ("99.5%", "99.0%")
    assert format_vs_threshold(0.7999, 0.8, digits=2) == ("0.7999", "0.8000")
    assert format_vs_threshold(0.8, 0.8, digits=2) == ("0.80", "0.80")  # equal passes
    assert format_vs_threshold(None, 0.8)[0] == "n/a"


def test_no_value_below_its_threshold_reads_as_meeting_it() -> None:
    rng = random.Random(0)
    for _ in range(20_000):
        threshold = rng.choice([0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, rng.random()])
        value = threshold - rng.choice([1e-7, 1e-5, 1e-4, 4e-4, 1e-3, rng.random() * 0.01])
        for percent in (True, False):
            shown, needed = format_vs_threshold(value, threshold, percent=percent)
            assert _number(shown) < _number(needed), (value, threshold, shown, needed)
        value = threshold + rng.random() * 0.01  # and a pass never reads as a failure
        shown, needed = format_vs_threshold(value, threshold, percent=True)
        assert _number(shown) >= _number(needed), (value, threshold, shown, needed)


def test_replication_message_of_a_near_miss() -> None:
    n = 10_000
    answers = torch.zeros(n, 1, dtype=torch.long)
    predictions = answers.clone()
    predictions[:104] = 1  # 98.96% agreement
    result = replication_check(
        predictions=predictions,
        model_answers=answers,
        labels=answers,
        n_heldout=n,
        config={"replication_threshold": 0.99},
    )
    assert not result.passed
    assert "98.96% (needs 99.00%)" in result.message
    shown = re.search(r"model (\S+) \(needs (\S+)\)", result.message)
    assert shown and _number(shown[1]) < _number(shown[2])
