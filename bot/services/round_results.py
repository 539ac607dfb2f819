"""A closed round's results: statistics, its best verified submissions and its credits."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.services import credits, leaderboards, rounds
from bot.services.round_data import BestSubmission, CreditLine, RoundResults


def results(*, session: Session, round_id: int, top: int = 5) -> RoundResults:
    """Statistics, the best verified submissions (the closed round's leaderboard), and credits."""
    round_ = rounds.require(session=session, round_id=round_id)
    board = leaderboards.round_leaderboard(
        session=session, round_id=round_id, now=round_.closes_at, reveal=True
    )
    passing = [entry for entry in board.entries if entry.passed]
    best = [
        BestSubmission(
            user_id=entry.user_id,
            submission_id=entry.submission_id,
            private_score=entry.private_score,
            public_score=entry.public_score,
            checks_passed=entry.checks_passed,
            writeup_url=entry.writeup_url,
        )
        for entry in passing[:top]
    ]
    credit_lines = [
        CreditLine(user_id=c.user_id, kind=c.kind.value, joint=c.joint, note=c.note, link=c.link)
        for c in credits.for_round(session=session, round_id=round_id)
    ]
    return RoundResults(
        submissions=board.submissions,
        participants=board.participants,
        verified_passing=len(passing),
        solvers=board.solvers,
        best=best,
        credits=credit_lines,
    )
