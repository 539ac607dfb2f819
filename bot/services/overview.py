"""What a participant sees about the current round: puzzle, released hints, their submissions.

One read-only function feeds `/puzzle`, `/puzzle hints`, `/puzzle me`, App Home and the console,
so they always agree.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services import rounds
from bot.services.overview_data import MySubmissions, RoundOverview
from puzzles.catalog import Puzzle, UnknownPuzzle, get_puzzle
from storage.models import Hint, HintStatus, Submission, Verdict, utcnow


def current(*, session: Session, now: datetime | None = None) -> RoundOverview:
    now = now or utcnow()
    round_ = rounds.current(session=session, now=now)
    if round_ is None:
        return RoundOverview(round=None, puzzle=None, puzzle_title=None, now=now)
    version = round_.puzzle_version
    try:
        puzzle: Puzzle | None = get_puzzle(version.slug)
    except UnknownPuzzle:
        puzzle = None
    hints = list(
        session.scalars(
            select(Hint)
            .where(Hint.round_id == round_.id, Hint.status == HintStatus.RELEASED)
            .order_by(Hint.position)
        ).all()
    )
    return RoundOverview(
        round=round_, puzzle=puzzle, puzzle_title=version.title, hints=hints, now=now
    )


def my_submissions(
    *, session: Session, user_id: str, round_id: int | None = None, limit: int = 20
) -> MySubmissions:
    """The user's submissions (newest first; one round if given) and their best passing score."""
    query = select(Submission).where(Submission.user_id == user_id)
    if round_id is not None:
        query = query.where(Submission.round_id == round_id)
    subs = list(session.scalars(query.order_by(Submission.id.desc()).limit(limit)).all())
    best: float | None = None
    for sub in subs:
        latest: Verdict | None = sub.verdicts[-1] if sub.verdicts else None
        if latest is not None and latest.public_score is not None:
            best = latest.public_score if best is None else max(best, latest.public_score)
    return MySubmissions(submissions=subs, best_score=best)
