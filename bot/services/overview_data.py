"""What `/puzzle`, `/puzzle me` and App Home show about the current round (data only: the views
draw it, ``bot.services.overview`` reads it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from puzzles.catalog import Puzzle
from storage.models import Hint, Round, Submission, utcnow


@dataclass(frozen=True)
class RoundOverview:
    round: Round | None
    puzzle: Puzzle | None
    puzzle_title: str | None
    hints: list[Hint] = field(default_factory=list)  # released ones, in order
    now: datetime = field(default_factory=utcnow)

    @property
    def seconds_left(self) -> float | None:
        if self.round is None:
            return None
        return max(0.0, (self.round.closes_at - self.now).total_seconds())


@dataclass(frozen=True)
class MySubmissions:
    submissions: list[Submission]
    best_score: float | None
