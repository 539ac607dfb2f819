"""Rounds named by admins: an id, or ``latest`` (the most recently closed round)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from storage.models import Round, RoundStatus, utcnow


class RoundNotFound(LookupError):
    """The round a reference names does not exist (the message says why)."""


def resolve_round(*, session: Session, ref: str, now: datetime | None = None) -> Round:
    """A round by id, or ``latest``: the most recently closed round (the one to write up)."""
    now = now or utcnow()
    if ref.strip().lower() in ("latest", "last"):
        found = session.scalars(
            select(Round)
            .where(
                or_(
                    Round.status.in_((RoundStatus.CLOSED, RoundStatus.SOLUTIONS_POSTED)),
                    and_(Round.status == RoundStatus.OPEN, Round.closes_at <= now),
                )
            )
            .order_by(Round.closes_at.desc(), Round.id.desc())
            .limit(1)
        ).first()
        if found is None:
            raise RoundNotFound("no round has closed yet")
        return found
    try:
        round_id = int(ref)
    except ValueError as exc:
        raise RoundNotFound(f"ROUND must be a round id or `latest`, got {ref!r}") from exc
    found = session.get(Round, round_id)
    if found is None:
        raise RoundNotFound(f"no round with id {round_id}")
    return found
