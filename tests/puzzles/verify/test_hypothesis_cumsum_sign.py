"""The cumsum_sign reference hypothesis holds on secret seeds; each kind of wrong hypothesis that
applies to this one-variable model fails. In-process (the code is ours).

"Two roles swapped" does not apply: the hypothesis has one variable (the running mean at the
head), which alone decides every answer through the MLP's threshold.
"""

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
def cumsum():
    torch.set_num_threads(1)  # small models: threads only contend on a shared box
    puzzle = get_puzzle("cumsum_sign")
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
    return puzzle, engine, reference


def _check(cumsum, source: str, seed: int):
    puzzle, engine, _ = cumsum
    return check_trusted(source, engine(seed), load_task(puzzle), dict(puzzle.verify), seed=seed)


def _replace(source: str, old: str, new: str) -> str:
    assert source.count(old) == 1, old
    return source.replace(old, new)


def test_reference_predict_is_the_solution() -> None:
    puzzle = get_puzzle("cumsum_sign")
    hypothesis, solution = {}, {}
    exec((puzzle.path / "hypothesis.py").read_text(), hypothesis)
    exec(puzzle.solution_path.read_text(), solution)
    tokens = load_task(puzzle).generate(500, 7)
    assert torch.equal(hypothesis["predict"](tokens), solution["predict"](tokens))


@pytest.mark.parametrize("seed", [101, 202, 303, 404, 505])
def test_reference_hypothesis_holds_on_secret_seeds(cumsum, seed) -> None:
    check = _check(cumsum, cumsum[2], seed)
    assert check.passed, check.message
    details = check.details
    assert set(details["iia"]) == {"running_mean"}
    assert details["iia"]["running_mean"] >= details["thresholds"]["holds"]
    assert details["variables"]["running_mean"]["pairs_answer_changes"] >= 100


def _wrong_site(src: str) -> str:
    # the head at the first half only: the second half's answers follow the base, not the source
    return _replace(src, '"site": "L0H0",', '"site": "L0H0@0..9",')


def _not_computed(src: str) -> str:
    # "the head carries the current value": the answer's sign would follow the source's own
    # token, but the head carries the mean of the prefix
    return _replace(
        src,
        "    return values.cumsum(-1) / torch.arange(1, tokens.shape[1] + 1, dtype=torch.float64)",
        "    return values",
    )


def _false_attention(src: str) -> str:
    # the head attends uniformly over the prefix, not to its own position
    claim = '    "attention": [{"head": "L0H0", "query": "5..19", "key": "p"}],\n'
    return _replace(
        src,
        '    "answer": {"from": ["running_mean"]},\n',
        '    "answer": {"from": ["running_mean"]},\n' + claim,
    )


@pytest.mark.parametrize(
    ("mutate", "failing"),
    [(_wrong_site, "running_mean"), (_not_computed, "running_mean"), (_false_attention, None)],
    ids=["wrong-site", "not-computed", "false-attention"],
)
def test_wrong_hypotheses_fail(cumsum, mutate, failing) -> None:
    check = _check(cumsum, mutate(cumsum[2]), 101)
    assert not check.passed, check.message
    if failing is None:
        assert check.details["attention"][0]["status"] != HOLDS
    else:
        assert check.details["variables"][failing]["status"] != HOLDS, check.message
