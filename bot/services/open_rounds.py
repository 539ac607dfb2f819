"""The open rounds as (id, puzzle slug): what a worker warms up for, without the views and the
outbox that ``bot.services.rounds`` brings."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import PuzzleVersion, Round, RoundStatus


def open_rounds(session: Session) -> list[tuple[int, str]]:
    """(round id, puzzle slug) of every open round."""
    query = select(Round.id, PuzzleVersion.slug).join(Round.puzzle_version)
    return [
        (rid, slug) for rid, slug in session.execute(query.where(Round.status == RoundStatus.OPEN))
    ]
