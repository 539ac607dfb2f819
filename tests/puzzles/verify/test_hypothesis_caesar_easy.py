"""The Caesar (easy) reference hypothesis holds on secret seeds; each kind of wrong hypothesis that
applies to this model (``wrong_hypotheses.WRONG``, the ones the calibration measures) fails,
naming the claim that does not hold. In-process (the code is ours).

"Two roles swapped" does not apply here: ``letters`` -> ``shift`` is one chain and both sites lie on
the only path from the letters to the answer, so patching either carries the source's shift
(measured on seed 101: the swapped hypothesis holds, IIA 0.93 and 1.00). See writeup.md."""

from __future__ import annotations

import pytest
from hypothesis_support import WRONG, bench, predict_is_the_solution

from puzzles.verify.causal_check import HOLDS


@pytest.fixture(scope="module")
def caesar():
    return bench("caesar_easy")


def test_hypothesis_predict_is_the_reference_solution() -> None:
    assert predict_is_the_solution("caesar_easy")


@pytest.mark.parametrize("seed", [101, 202, 303, 404, 505])
def test_reference_hypothesis_holds_on_secret_seeds(caesar, seed) -> None:
    check = caesar.check(caesar.reference, seed)
    assert check.passed, check.message
    details = check.details
    assert set(details["iia"]) == {"letters", "shift"}
    assert all(v >= details["thresholds"]["holds"] for v in details["iia"].values())
    assert details["all_variables"]["status"] == HOLDS
    for row in details["variables"].values():
        assert row["pairs_answer_changes"] >= 100


@pytest.mark.parametrize(
    ("kind", "failing", "edits"), WRONG["caesar_easy"], ids=[w[0] for w in WRONG["caesar_easy"]]
)
def test_wrong_hypotheses_fail(caesar, kind, failing, edits) -> None:
    caesar.assert_wrong_fails(edits, failing)


def test_each_applicable_wrong_kind_is_covered() -> None:
    kinds = {kind for kind, _, _ in WRONG["caesar_easy"]}
    assert kinds == {"wrong-site", "not-computed", "false-attention"}
