"""The sorted-list reference hypothesis holds on secret seeds; each kind of wrong hypothesis that
applies to this model fails, naming the claim that does not hold. In-process (the code is ours)."""

from __future__ import annotations

import pytest
import torch

from puzzles.catalog import get_puzzle
from puzzles.models import load_task
from puzzles.verify.ablation import AblationEngine
from puzzles.verify.causal_check import HOLDS
from puzzles.verify.causal_section import check_trusted
from puzzles.verify.engine import _model

POOL = 600


@pytest.fixture(scope="module")
def sorted_list():
    torch.set_num_threads(1)  # small models: threads only contend on a shared box
    puzzle = get_puzzle("sorted_list")
    model, task = _model(puzzle, "cpu"), load_task(puzzle)
    engines = {}

    def engine(seed: int) -> AblationEngine:
        if seed not in engines:
            with torch.no_grad():
                engines[seed] = AblationEngine(
                    model, task.generate(POOL, seed), answer_positions=task.ANSWER_POSITIONS
                )
        return engines[seed]

    reference = (puzzle.path / "hypothesis.py").read_text()
    return puzzle, task, engine, reference


def _check(sorted_list, source: str, seed: int):
    puzzle, task, engine, _ = sorted_list
    return check_trusted(source, engine(seed), task, dict(puzzle.verify), seed=seed)


def _replace(source: str, old: str, new: str) -> str:
    assert source.count(old) == 1, old
    return source.replace(old, new)


def test_reference_predict_is_the_hypothesis() -> None:
    namespace: dict = {}
    exec((get_puzzle("sorted_list").path / "hypothesis.py").read_text(), namespace)
    tokens = load_task(get_puzzle("sorted_list")).generate(200, 7)
    assert torch.equal(namespace["predict"](tokens), tokens[:, :10].sort(-1).values)


@pytest.mark.parametrize("seed", [101, 202, 303, 404, 505])
def test_reference_hypothesis_holds_on_secret_seeds(sorted_list, seed) -> None:
    check = _check(sorted_list, sorted_list[3], seed)
    assert check.passed, check.message
    details = check.details
    assert set(details["iia"]) == {"first", "successors"}
    assert all(v >= details["thresholds"]["holds"] for v in details["iia"].values())
    assert details["all_variables"]["status"] == HOLDS
    for row in details["variables"].values():
        assert row["pairs_answer_changes"] >= 100


FIRST_SITE = '"site": ["L0H0@10", "L0H1@10"],'
SUCCESSOR_SITE = '"site": ["L0H0@11..19", "L0H1@11..19"],'


def _wrong_site(src: str) -> str:
    # the list positions hold the unsorted numbers; their heads carry no answer
    return _replace(src, SUCCESSOR_SITE, '"site": ["L0H0@1..9", "L0H1@1..9"],')


def _swapped(src: str) -> str:
    src = _replace(src, FIRST_SITE, '"site": "@@SUCCESSORS@@",')
    src = _replace(src, SUCCESSOR_SITE, FIRST_SITE)
    return _replace(src, '"site": "@@SUCCESSORS@@",', SUCCESSOR_SITE)


def _not_computed(src: str) -> str:
    # "the heads carry the step up to the next number, added to the query's own number": the
    # same answers, but the heads copy the number itself, so a patched step does not move it
    src = _replace(
        src,
        "return above.min(-1).values  # [n, 9]",
        "return above.min(-1).values - current[..., 0]",
    )
    src = _replace(
        src,
        '"answer": {"from": ["first", "successors"]},',
        '"answer": {"from": ["first", "successors", "tokens"]},',
    )
    return _replace(
        src,
        "def answer(first: torch.Tensor, successors: torch.Tensor) -> torch.Tensor:\n"
        "    return torch.cat([first, successors], -1)",
        "def answer(first, successors, tokens):\n"
        "    return torch.cat([first, (successors + tokens[:, 11:20]).clamp(0, 49)], -1)",
    )


def _false_attention(src: str) -> str:
    claim = '"attention": [{"head": "L0H0", "query": "11..19", "key": "p-1"}],\n'
    return _replace(
        src,
        '    "answer": {"from": ["first", "successors"]},\n',
        '    "answer": {"from": ["first", "successors"]},\n    ' + claim,
    )


@pytest.mark.parametrize(
    ("mutate", "failing"),
    [
        (_wrong_site, "successors"),
        (_swapped, "successors"),
        (_not_computed, "successors"),
        (_false_attention, "attention"),
    ],
    ids=["wrong-site", "roles-swapped", "not-computed", "false-attention"],
)
def test_wrong_hypotheses_fail(sorted_list, mutate, failing) -> None:
    check = _check(sorted_list, mutate(sorted_list[3]), 101)
    assert not check.passed, check.message
    if failing == "attention":
        assert check.details["attention"][0]["status"] != HOLDS
        assert all(r["status"] == HOLDS for r in check.details["variables"].values())
    else:
        assert check.details["variables"][failing]["status"] != HOLDS, check.message
    assert "does not hold" in check.message or "partly" in check.message


def test_swapped_roles_fail_both_claims(sorted_list) -> None:
    check = _check(sorted_list, _swapped(sorted_list[3]), 202)
    statuses = {name: row["status"] for name, row in check.details["variables"].items()}
    assert statuses["first"] != HOLDS and statuses["successors"] != HOLDS, check.message
