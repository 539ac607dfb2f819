"""What the solutions post reports about a closed round (data only: the views draw it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BestSubmission:
    user_id: str
    submission_id: int
    private_score: float | None
    public_score: float | None
    checks_passed: int
    writeup_url: str | None


@dataclass(frozen=True)
class CreditLine:
    user_id: str
    kind: str
    joint: bool
    note: str
    link: str | None


@dataclass(frozen=True)
class RoundResults:
    """What the solutions post reports about a closed round."""

    submissions: int
    participants: int
    verified_passing: int  # users whose best verified submission passed
    solvers: int  # users whose best submission passed every check
    best: list[BestSubmission]
    credits: list[CreditLine]
