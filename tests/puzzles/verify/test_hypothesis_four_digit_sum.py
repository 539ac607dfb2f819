"""The four_digit_sum reference hypothesis holds on secret seeds (per-variable IIA in the verdict
JSON); each kind of wrong hypothesis fails, naming the claim that does not hold. The wrong
hypotheses are the ones the causal calibration measures (``wrong_hypotheses.WRONG``)."""

from __future__ import annotations

import json
import shutil

import pytest
from hypothesis_support import WRONG, bench, mutate, wrong_edits

from puzzles.catalog import get_puzzle
from puzzles.verify import verify_submission
from puzzles.verify.causal_check import HOLDS

VARIABLES = {"pair0", "pair1", "pair2", "pair3"}


@pytest.fixture(scope="module")
def four_digit_sum():
    return bench("four_digit_sum")


@pytest.mark.parametrize("seed", [101, 202, 303, 404, 505])
def test_reference_hypothesis_holds_on_secret_seeds(four_digit_sum, seed) -> None:
    puzzle = four_digit_sum.puzzle
    result = four_digit_sum.check(four_digit_sum.reference, seed)
    assert result.passed, result.message
    details = json.loads(json.dumps(result.to_json()))["details"]  # as the verdict JSON has it
    assert set(details["iia"]) == VARIABLES
    holds = details["thresholds"]["holds"]
    assert holds == puzzle.verify["causal_holds"]  # the calibrated bar, not the default
    assert all(value >= holds for value in details["iia"].values())
    assert details["all_variables"]["status"] == HOLDS
    assert details["attention"][0]["status"] == HOLDS
    for row in details["variables"].values():  # pairs really differ and change the answer
        assert row["pairs_answer_changes"] >= 100


@pytest.mark.parametrize(
    ("kind", "failing", "edits"),
    WRONG["four_digit_sum"],
    ids=[w[0] for w in WRONG["four_digit_sum"]],
)
def test_wrong_hypotheses_fail(four_digit_sum, kind, failing, edits) -> None:
    four_digit_sum.assert_wrong_fails(edits, failing)


def test_the_calibrated_bar_sits_between_the_wrong_and_the_reference() -> None:
    puzzle = get_puzzle("four_digit_sum")
    section = json.loads((puzzle.path / "calibration.json").read_text())["causal"]
    assert section["thresholds"]["causal_holds"] == puzzle.verify["causal_holds"]
    assert section["reference_passes"]["k"] == section["reference_passes"]["n"] >= 60
    assert section["wrong_claims_holding"]["k"] == 0
    assert section["iia"]["separates"] and section["attention"]["separates"]


def test_each_applicable_wrong_kind_is_covered() -> None:
    kinds = {kind for kind, _, _ in WRONG["four_digit_sum"]}
    assert kinds == {"wrong-site", "roles-swapped", "not-computed", "false-attention"}


def test_swapped_roles_fail_both_claims(four_digit_sum) -> None:
    edits = wrong_edits("four_digit_sum", "roles-swapped")
    result = four_digit_sum.check(mutate(four_digit_sum.reference, edits), 202)
    statuses = {name: row["status"] for name, row in result.details["variables"].items()}
    assert statuses["pair0"] != HOLDS and statuses["pair3"] != HOLDS, result.message


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap NOT installed")
def test_reference_hypothesis_end_to_end_has_per_variable_iia() -> None:
    puzzle = get_puzzle("four_digit_sum")
    source = (puzzle.path / "hypothesis.py").read_bytes()
    data = verify_submission(
        source, "hypothesis.py", puzzle, seed=4242, heldout_size=1000
    ).to_json()
    causal = data["checks"]["causal"]
    assert causal["passed"], causal["message"]
    assert set(causal["details"]["iia"]) == VARIABLES
    assert data["scores"]["causal"] == causal["details"]["iia_all"]
    assert "| `pair0` | `resid_post L0 @5 + L0H0@9" in data["report_md"]
