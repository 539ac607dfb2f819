"""The cumsum_sign reference hypothesis holds on secret seeds; each kind of wrong hypothesis that
applies to this one-variable model (``wrong_hypotheses.WRONG``, the ones the calibration
measures) fails. In-process (the code is ours).

"Two roles swapped" does not apply: the hypothesis has one variable (the running mean at the
head), which alone decides every answer through the MLP's threshold.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis_support import WRONG, bench, mutate

from puzzles.catalog import get_puzzle
from puzzles.models import load_task
from puzzles.verify.causal_check import HOLDS


@pytest.fixture(scope="module")
def cumsum():
    return bench("cumsum_sign")


def test_reference_predict_is_the_solution() -> None:
    puzzle = get_puzzle("cumsum_sign")
    hypothesis, solution = {}, {}
    exec((puzzle.path / "hypothesis.py").read_text(), hypothesis)
    exec(puzzle.solution_path.read_text(), solution)
    tokens = load_task(puzzle).generate(500, 7)
    assert torch.equal(hypothesis["predict"](tokens), solution["predict"](tokens))


@pytest.mark.parametrize("seed", [101, 202, 303, 404, 505])
def test_reference_hypothesis_holds_on_secret_seeds(cumsum, seed) -> None:
    check = cumsum.check(cumsum.reference, seed)
    assert check.passed, check.message
    details = check.details
    assert set(details["iia"]) == {"running_mean"}
    assert details["iia"]["running_mean"] >= details["thresholds"]["holds"]
    assert details["variables"]["running_mean"]["pairs_answer_changes"] >= 100


@pytest.mark.parametrize(
    ("kind", "failing", "edits"), WRONG["cumsum_sign"], ids=[w[0] for w in WRONG["cumsum_sign"]]
)
def test_wrong_hypotheses_fail(cumsum, kind, failing, edits) -> None:
    check = cumsum.check(mutate(cumsum.reference, edits), 101)
    assert not check.passed, check.message
    if failing == "attention":
        assert check.details["attention"][0]["status"] != HOLDS
    else:
        assert check.details["variables"][failing]["status"] != HOLDS, check.message


def test_each_applicable_wrong_kind_is_covered() -> None:
    kinds = {kind for kind, _, _ in WRONG["cumsum_sign"]}
    assert kinds == {"wrong-site", "not-computed", "false-attention"}
