"""Rounds: the puzzle of the month, when it opens and closes, and in which channel.

A round is open when ``opens_at <= now < closes_at`` and it is not cancelled: the times are the
truth, so a round counts as open even if the scheduler has not yet posted its announcement.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Round, RoundStatus


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime; pass a timezone-aware time (UTC)")
    return now


def current(*, session: Session, now: datetime) -> Round | None:
    """The open round at ``now`` (the latest-opened one if several overlap), or None."""
    _require_aware(now)
    return session.scalars(
        select(Round)
        .where(
            Round.status != RoundStatus.CANCELLED,
            Round.opens_at <= now,
            Round.closes_at > now,
        )
        .order_by(Round.opens_at.desc(), Round.id.desc())
        .limit(1)
    ).first()
