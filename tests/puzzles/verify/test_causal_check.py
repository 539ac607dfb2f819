"""The causal check: the palindromes reference hypothesis holds on secret seeds; each kind of
wrong hypothesis (``wrong_hypotheses.WRONG``, the ones the calibration measures) fails, naming
the claim that does not hold. In-process (the code is ours)."""

from __future__ import annotations

import pytest
from hypothesis_support import WRONG, bench, mutate, wrong_edits

from puzzles.verify.causal_check import HOLDS


@pytest.fixture(scope="module")
def palindromes():
    return bench("palindromes")


@pytest.mark.parametrize("seed", [101, 202, 303, 404, 505])
def test_reference_hypothesis_holds_on_secret_seeds(palindromes, seed) -> None:
    check = palindromes.check(palindromes.reference, seed)
    assert check.passed, check.message
    details = check.details
    assert set(details["iia"]) == {"mirror", "is_palindrome"}
    assert all(v >= details["thresholds"]["holds"] for v in details["iia"].values())
    assert details["all_variables"]["status"] == HOLDS
    assert details["attention"][0]["status"] == HOLDS
    # pairs really differ on the variable and half of them change the answer
    for row in details["variables"].values():
        assert row["pairs_answer_changes"] >= 100


@pytest.mark.parametrize(
    ("kind", "failing", "edits"), WRONG["palindromes"], ids=[w[0] for w in WRONG["palindromes"]]
)
def test_wrong_hypotheses_fail(palindromes, kind, failing, edits) -> None:
    palindromes.assert_wrong_fails(edits, failing)


def test_each_applicable_wrong_kind_is_covered() -> None:
    kinds = {kind for kind, _, _ in WRONG["palindromes"]}
    assert kinds == {"wrong-site", "roles-swapped", "not-computed", "false-attention"}


def test_swapped_roles_fail_both_claims(palindromes) -> None:
    swapped = mutate(palindromes.reference, wrong_edits("palindromes", "roles-swapped"))
    check = palindromes.check(swapped, 202)
    statuses = {name: row["status"] for name, row in check.details["variables"].items()}
    assert statuses["mirror"] != HOLDS and statuses["is_palindrome"] != HOLDS, check.message


def test_no_hypothesis_no_causal_check(palindromes) -> None:
    check = palindromes.check("def predict(tokens):\n    return tokens[:, :1] * 0\n", 101)
    assert not check.passed and check.message == "no HYPOTHESIS declared"
