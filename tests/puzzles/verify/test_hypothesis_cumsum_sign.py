"""The cumsum_sign reference hypothesis holds on secret seeds; each kind of wrong hypothesis that
applies to this one-variable model (``wrong_hypotheses.WRONG``, the ones the calibration
measures) fails. In-process (the code is ours).

"Two roles swapped" does not apply: the hypothesis has one variable (the running mean at the
head), which alone decides every answer through the MLP's threshold.
"""

from __future__ import annotations

import pytest
from hypothesis_support import WRONG, bench, predict_is_the_solution


@pytest.fixture(scope="module")
def cumsum():
    return bench("cumsum_sign")


def test_reference_predict_is_the_solution() -> None:
    assert predict_is_the_solution("cumsum_sign")


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
    cumsum.assert_wrong_fails(edits, failing)


def test_each_applicable_wrong_kind_is_covered() -> None:
    kinds = {kind for kind, _, _ in WRONG["cumsum_sign"]}
    assert kinds == {"wrong-site", "not-computed", "false-attention"}
