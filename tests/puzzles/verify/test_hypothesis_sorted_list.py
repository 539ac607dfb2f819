"""The sorted-list reference hypothesis holds on secret seeds; each kind of wrong hypothesis that
applies to this model (``wrong_hypotheses.WRONG``, the ones the calibration measures) fails,
naming the claim that does not hold. In-process (the code is ours)."""

from __future__ import annotations

import pytest
import torch
from hypothesis_support import WRONG, bench, mutate, wrong_edits

from puzzles.catalog import get_puzzle
from puzzles.models import load_task
from puzzles.verify.causal_check import HOLDS


@pytest.fixture(scope="module")
def sorted_list():
    return bench("sorted_list")


def test_reference_predict_is_the_hypothesis() -> None:
    namespace: dict = {}
    exec((get_puzzle("sorted_list").path / "hypothesis.py").read_text(), namespace)
    tokens = load_task(get_puzzle("sorted_list")).generate(200, 7)
    assert torch.equal(namespace["predict"](tokens), tokens[:, :10].sort(-1).values)


@pytest.mark.parametrize("seed", [101, 202, 303, 404, 505])
def test_reference_hypothesis_holds_on_secret_seeds(sorted_list, seed) -> None:
    check = sorted_list.check(sorted_list.reference, seed)
    assert check.passed, check.message
    details = check.details
    assert set(details["iia"]) == {"first", "successors"}
    assert all(v >= details["thresholds"]["holds"] for v in details["iia"].values())
    assert details["all_variables"]["status"] == HOLDS
    for row in details["variables"].values():
        assert row["pairs_answer_changes"] >= 100


@pytest.mark.parametrize(
    ("kind", "failing", "edits"), WRONG["sorted_list"], ids=[w[0] for w in WRONG["sorted_list"]]
)
def test_wrong_hypotheses_fail(sorted_list, kind, failing, edits) -> None:
    sorted_list.assert_wrong_fails(edits, failing)


def test_each_applicable_wrong_kind_is_covered() -> None:
    kinds = {kind for kind, _, _ in WRONG["sorted_list"]}
    assert kinds == {"wrong-site", "roles-swapped", "not-computed", "false-attention"}


def test_swapped_roles_fail_both_claims(sorted_list) -> None:
    swapped = mutate(sorted_list.reference, wrong_edits("sorted_list", "roles-swapped"))
    check = sorted_list.check(swapped, 202)
    statuses = {name: row["status"] for name, row in check.details["variables"].items()}
    assert statuses["first"] != HOLDS and statuses["successors"] != HOLDS, check.message
