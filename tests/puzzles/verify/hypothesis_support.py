"""One bench per puzzle for the hypothesis tests: its model, an ablation engine per seed (built
once, POOL inputs drawn from the seed), the reference hypothesis and the trusted causal check.

The wrong hypotheses the tests assert are ``wrong_hypotheses.WRONG``, the list the causal
calibration measures, applied with the same exactly-once edits (``replace_once``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch

from puzzles.catalog import Puzzle, get_puzzle
from puzzles.models import load_task
from puzzles.verify.ablation import AblationEngine
from puzzles.verify.calibration import load_reference
from puzzles.verify.causal_check import HOLDS
from puzzles.verify.causal_section import check_trusted
from puzzles.verify.engine import _model
from puzzles.verify.verdict import CheckResult
from puzzles.verify.wrong_hypotheses import WRONG, mutate, replace_once

POOL = 600

__all__ = [
    "POOL",
    "WRONG",
    "Bench",
    "bench",
    "mutate",
    "predict_is_the_solution",
    "replace_once",
    "wrong_edits",
]


@dataclass
class Bench:
    puzzle: Puzzle
    task: ModuleType
    model: Any
    reference: str
    _engines: dict[int, AblationEngine] = field(default_factory=dict)

    def engine(self, seed: int) -> AblationEngine:
        """The engine on POOL inputs from ``seed``, built once per seed."""
        if seed not in self._engines:
            with torch.no_grad():
                self._engines[seed] = AblationEngine(
                    self.model,
                    self.task.generate(POOL, seed),
                    answer_positions=self.task.ANSWER_POSITIONS,
                )
        return self._engines[seed]

    def check(self, source: str, seed: int) -> CheckResult:
        """The causal check of hypothesis ``source`` on ``seed``, in-process (our code only)."""
        return check_trusted(
            source, self.engine(seed), self.task, dict(self.puzzle.verify), seed=seed
        )

    def assert_wrong_fails(self, edits: list[tuple[str, str]], failing: str) -> None:
        """The reference with ``edits`` fails on seed 101, on the claim it broke (``failing``: a
        variable, or "attention" with every variable still holding), and the message says so."""
        check = self.check(mutate(self.reference, edits), 101)
        assert not check.passed, check.message
        if failing == "attention":
            assert check.details["attention"][0]["status"] != HOLDS
            assert all(r["status"] == HOLDS for r in check.details["variables"].values())
        else:
            assert check.details["variables"][failing]["status"] != HOLDS, check.message
        assert "does not hold" in check.message or "partly" in check.message


def bench(slug: str) -> Bench:
    torch.set_num_threads(1)  # small models: threads only contend on a shared box
    puzzle = get_puzzle(slug)
    return Bench(
        puzzle=puzzle,
        task=load_task(puzzle),
        model=_model(puzzle, "cpu"),
        reference=(puzzle.path / "hypothesis.py").read_text(encoding="utf-8"),
    )


def wrong_edits(slug: str, kind: str) -> list[tuple[str, str]]:
    """The text edits of ``slug``'s wrong hypothesis of ``kind`` (e.g. "roles-swapped")."""
    return next(edits for k, _, edits in WRONG[slug] if k == kind)


def predict_is_the_solution(slug: str) -> bool:
    """hypothesis.py's ``predict`` gives solution.py's answers, edge cases included."""
    puzzle = get_puzzle(slug)
    namespace: dict = {}
    exec((puzzle.path / "hypothesis.py").read_text(encoding="utf-8"), namespace)
    task = load_task(puzzle)
    tokens = torch.cat([task.generate(500, 7), torch.as_tensor(task.edge_cases()).long()])
    return torch.equal(namespace["predict"](tokens), load_reference(puzzle).predict(tokens))
