"""The causal check: the palindromes reference hypothesis holds on secret seeds; each kind of
wrong hypothesis fails, naming the claim that does not hold. In-process (the code is ours)."""

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
def palindromes():
    torch.set_num_threads(1)  # small models: threads only contend on a shared box
    puzzle = get_puzzle("palindromes")
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


def _check(palindromes, source: str, seed: int):
    puzzle, task, engine, _ = palindromes
    return check_trusted(source, engine(seed), task, dict(puzzle.verify), seed=seed)


def _replace(source: str, old: str, new: str) -> str:
    assert source.count(old) == 1, old
    return source.replace(old, new)


@pytest.mark.parametrize("seed", [101, 202, 303, 404, 505])
def test_reference_hypothesis_holds_on_secret_seeds(palindromes, seed) -> None:
    check = _check(palindromes, palindromes[3], seed)
    assert check.passed, check.message
    details = check.details
    assert set(details["iia"]) == {"mirror", "is_palindrome"}
    assert all(v >= details["thresholds"]["holds"] for v in details["iia"].values())
    assert details["all_variables"]["status"] == HOLDS
    assert details["attention"][0]["status"] == HOLDS
    # pairs really differ on the variable and half of them change the answer
    for row in details["variables"].values():
        assert row["pairs_answer_changes"] >= 100


MIRROR_SITE = '"site": "L0H0@11..20",'
DECISION_SITE = '"site": ["L1H0@END", "L1H1@END"],'


def _wrong_site(src: str) -> str:
    return _replace(src, MIRROR_SITE, '"site": "L1H0@11..20",')


def _swapped(src: str) -> str:
    src = _replace(src, MIRROR_SITE, '"site": "@@DECISION@@",')
    src = _replace(src, DECISION_SITE, MIRROR_SITE)
    return _replace(src, '"site": "@@DECISION@@",', DECISION_SITE)


def _not_computed(src: str) -> str:
    # "the first half holds a copy of the second half": causal attention cannot compute it
    src = _replace(src, MIRROR_SITE, '"site": "L0H0@1..10",')
    src = _replace(src, "return tokens[:, 1:11].flip(-1)", "return tokens[:, 11:21].flip(-1)")
    return _replace(
        src,
        "return (tokens[:, 11:21] == mirror).all(-1)",
        "return (tokens[:, 1:11] == mirror).all(-1)",
    )


def _false_attention(src: str) -> str:
    return _replace(src, '"key": "21-p"', '"key": "p-1"')


@pytest.mark.parametrize(
    ("mutate", "failing"),
    [
        (_wrong_site, "mirror"),
        (_swapped, "mirror"),
        (_not_computed, "mirror"),
        (_false_attention, "attention"),
    ],
    ids=["wrong-site", "roles-swapped", "not-computed", "false-attention"],
)
def test_wrong_hypotheses_fail(palindromes, mutate, failing) -> None:
    check = _check(palindromes, mutate(palindromes[3]), 101)
    assert not check.passed, check.message
    if failing == "attention":
        assert check.details["attention"][0]["status"] != HOLDS
        assert all(r["status"] == HOLDS for r in check.details["variables"].values())
    else:
        assert check.details["variables"][failing]["status"] != HOLDS, check.message
    assert "does not hold" in check.message or "partly" in check.message


def test_swapped_roles_fail_both_claims(palindromes) -> None:
    check = _check(palindromes, _swapped(palindromes[3]), 202)
    statuses = {name: row["status"] for name, row in check.details["variables"].items()}
    assert statuses["mirror"] != HOLDS and statuses["is_palindrome"] != HOLDS, check.message


def test_no_hypothesis_no_causal_check(palindromes) -> None:
    check = _check(palindromes, "def predict(tokens):\n    return tokens[:, :1] * 0\n", 101)
    assert not check.passed and check.message == "no HYPOTHESIS declared"
