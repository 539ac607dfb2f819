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
from puzzles.verify.causal_section import check_trusted
from puzzles.verify.engine import _model
from puzzles.verify.verdict import CheckResult
from puzzles.verify.wrong_hypotheses import WRONG, mutate, replace_once

POOL = 600

__all__ = ["POOL", "WRONG", "Bench", "bench", "mutate", "replace_once", "wrong_edits"]


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
