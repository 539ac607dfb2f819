"""The leaderboards' data: what the views draw, and the statuses that decide who ranks.

Kept apart from the queries (``bot.services.leaderboards``) so views import data, never services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from storage.models import Round, RoundStatus, SubmissionStatus

# Submissions that never rank, whatever verdict they carry (an admin cancelled or rejected them).
EXCLUDED_STATUSES = (SubmissionStatus.CANCELLED, SubmissionStatus.REJECTED)
CLOSED_STATUSES = (RoundStatus.CLOSED, RoundStatus.SOLUTIONS_POSTED)
WAITING_STATUSES = (SubmissionStatus.RECEIVED, SubmissionStatus.QUEUED, SubmissionStatus.RUNNING)


class LeaderboardError(LookupError):
    """The round asked for does not exist (the message says which)."""


@dataclass(frozen=True)
class ScoreRule:
    """How a puzzle's primary score ranks: its metric name and direction."""

    metric: str = "quality"
    higher_is_better: bool = True
    checks_total: int | None = None


@dataclass(slots=True)
class RoundEntry:
    """One row of a round board. Boards are cached and shared: treat entries as read-only."""

    rank: int
    user_id: str
    display_name: str | None
    submission_id: int
    submitted_at: datetime
    passed: bool
    checks_passed: int
    public_score: float | None
    private_score: float | None  # None until the round is closed
    attempts: int  # the user's submissions in this round
    latest_status: SubmissionStatus
    writeup_url: str | None

    @property
    def name(self) -> str:
        return self.display_name or self.user_id


@dataclass(frozen=True)
class RoundLeaderboard:
    round_id: int
    puzzle_slug: str
    puzzle_title: str
    channel_id: str
    opens_at: datetime
    closes_at: datetime
    revealed: bool  # the round is closed: private scores shown and used for ranking
    rule: ScoreRule
    entries: list[RoundEntry]
    participants: int  # users with at least one submission
    submissions: int
    solvers: int  # users whose best submission passes every check
    pending_users: list[str] = field(default_factory=list)  # unranked, a verdict on its way

    def entry_for(self, user_id: str) -> RoundEntry | None:
        return next((e for e in self.entries if e.user_id == user_id), None)


@dataclass(frozen=True)
class AllTimeEntry:
    rank: int
    user_id: str
    display_name: str | None
    best_solutions: int
    honourable_mentions: int
    rounds_solved: int
    current_streak: int
    longest_streak: int

    @property
    def name(self) -> str:
        return self.display_name or self.user_id


@dataclass(frozen=True)
class AllTimeLeaderboard:
    entries: list[AllTimeEntry]
    rounds_counted: int


def is_revealed(round_: Round, *, now: datetime) -> bool:
    """Private scores show once the round is closed by status or by its closing time."""
    return round_.status in CLOSED_STATUSES or now >= round_.closes_at


__all__ = [
    "CLOSED_STATUSES",
    "EXCLUDED_STATUSES",
    "WAITING_STATUSES",
    "AllTimeEntry",
    "AllTimeLeaderboard",
    "LeaderboardError",
    "RoundEntry",
    "RoundLeaderboard",
    "ScoreRule",
    "is_revealed",
]
