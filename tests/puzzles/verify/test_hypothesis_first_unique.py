"""The first_unique reference hypothesis holds on secret seeds at its calibrated bar; each kind of
wrong hypothesis (``wrong_hypotheses.WRONG``, the ones the calibration measures) fails. In-process
(the code is ours).

One variable (``letters``, the prefix's letters as the three layer-0 heads spread them) read in two
roles by the answer: which letters are candidates (from layer 0) and how often each occurs (from
the tokens). "Two roles swapped" swaps those. The bar is low (calibrated 0.43; the reference's IIA
is 0.57-0.68): the patched model picks among layer 0's letters more loosely than the vote, see
writeup.md.
"""

from __future__ import annotations

import pytest
from hypothesis_support import WRONG, bench, predict_is_the_solution


@pytest.fixture(scope="module")
def first_unique():
    return bench("first_unique")


def test_reference_predict_is_the_solution() -> None:
    assert predict_is_the_solution("first_unique")


@pytest.mark.parametrize("seed", [101, 202, 303, 404, 505])
def test_reference_hypothesis_holds_on_secret_seeds(first_unique, seed) -> None:
    check = first_unique.check(first_unique.reference, seed)
    assert check.passed, check.message
    details = check.details
    assert set(details["iia"]) == {"letters"}
    assert details["iia"]["letters"] >= details["thresholds"]["holds"]
    assert details["variables"]["letters"]["pairs_answer_changes"] >= 100


@pytest.mark.parametrize(
    ("kind", "failing", "edits"), WRONG["first_unique"], ids=[w[0] for w in WRONG["first_unique"]]
)
def test_wrong_hypotheses_fail(first_unique, kind, failing, edits) -> None:
    first_unique.assert_wrong_fails(edits, failing)


def test_each_wrong_kind_is_covered() -> None:
    kinds = {kind for kind, _, _ in WRONG["first_unique"]}
    assert kinds == {"wrong-site", "roles-swapped", "not-computed", "false-attention"}
