"""The Caesar (easy) reference hypothesis holds on secret seeds; each kind of wrong hypothesis that
applies to this model fails, naming the claim that does not hold. In-process (the code is ours).

"Two roles swapped" does not apply here: ``letters`` -> ``shift`` is one chain and both sites lie on
the only path from the letters to the answer, so patching either carries the source's shift
(measured on seed 101: the swapped hypothesis holds, IIA 0.93 and 1.00). See writeup.md."""

from __future__ import annotations

import pytest
import torch

from puzzles.catalog import get_puzzle
from puzzles.models import load_task
from puzzles.verify.ablation import AblationEngine
from puzzles.verify.calibration import load_reference
from puzzles.verify.causal_check import HOLDS
from puzzles.verify.causal_section import check_trusted
from puzzles.verify.engine import _model

POOL = 600


@pytest.fixture(scope="module")
def caesar():
    torch.set_num_threads(1)  # small models: threads only contend on a shared box
    puzzle = get_puzzle("caesar_easy")
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


def _check(caesar, source: str, seed: int):
    puzzle, task, engine, _ = caesar
    return check_trusted(source, engine(seed), task, dict(puzzle.verify), seed=seed)


def _replace(source: str, old: str, new: str) -> str:
    assert source.count(old) == 1, old
    return source.replace(old, new)


def test_hypothesis_predict_is_the_reference_solution() -> None:
    puzzle = get_puzzle("caesar_easy")
    namespace: dict = {}
    exec((puzzle.path / "hypothesis.py").read_text(), namespace)
    task = load_task(puzzle)
    tokens = torch.cat([task.generate(300, 7), task.edge_cases()])
    assert torch.equal(namespace["predict"](tokens), load_reference(puzzle).predict(tokens))


@pytest.mark.parametrize("seed", [101, 202, 303, 404, 505])
def test_reference_hypothesis_holds_on_secret_seeds(caesar, seed) -> None:
    check = _check(caesar, caesar[3], seed)
    assert check.passed, check.message
    details = check.details
    assert set(details["iia"]) == {"letters", "shift"}
    assert all(v >= details["thresholds"]["holds"] for v in details["iia"].values())
    assert details["all_variables"]["status"] == HOLDS
    for row in details["variables"].values():
        assert row["pairs_answer_changes"] >= 100


LETTERS_SITE = '"site": ["L0H0@0..23", "L0H1@0..23"],'
SHIFT_SITE = '"site": "L0MLP@0..23",'


def _wrong_site(src: str) -> str:
    # the heads at half the positions: the other half still reads the base text's letters
    return _replace(src, LETTERS_SITE, '"site": ["L0H0@0..11", "L0H1@0..11"],')


def _swapped(src: str) -> str:
    src = _replace(src, LETTERS_SITE, '"site": "@@SHIFT@@",')
    src = _replace(src, SHIFT_SITE, LETTERS_SITE)
    return _replace(src, '"site": "@@SHIFT@@",', SHIFT_SITE)


def _not_computed(src: str) -> str:
    # "the MLP decrypts each position's letter; the answer is the letter minus its plaintext":
    # the same answers, but the MLP writes one shift everywhere, not a per-position plaintext
    src = _replace(
        src, '"answer": {"from": ["shift"]},', '"answer": {"from": ["shift", "tokens"]},'
    )
    src = _replace(
        src,
        "    return out\n\n\ndef answer",
        "    return (tokens - out) % 26  # the plaintext letter at each position\n\n\ndef answer",
    )
    return _replace(
        src,
        "def answer(shift: torch.Tensor) -> torch.Tensor:\n    return shift",
        "def answer(shift, tokens):\n    return (tokens - shift) % 26",
    )


def _false_attention(src: str) -> str:
    claim = '"attention": [{"head": "L0H0", "query": "0..23", "key": "p"}],\n'
    return _replace(
        src,
        '    "answer": {"from": ["shift"]},\n',
        '    "answer": {"from": ["shift"]},\n    ' + claim,
    )


@pytest.mark.parametrize(
    ("mutate", "failing"),
    [
        (_wrong_site, "letters"),
        (_not_computed, "shift"),
        (_false_attention, "attention"),
    ],
    ids=["wrong-site", "not-computed", "false-attention"],
)
def test_wrong_hypotheses_fail(caesar, mutate, failing) -> None:
    check = _check(caesar, mutate(caesar[3]), 101)
    assert not check.passed, check.message
    if failing == "attention":
        assert check.details["attention"][0]["status"] != HOLDS
        assert all(r["status"] == HOLDS for r in check.details["variables"].values())
    else:
        assert check.details["variables"][failing]["status"] != HOLDS, check.message
    assert "does not hold" in check.message or "partly" in check.message
