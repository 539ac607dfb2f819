"""Releasing a hint: mark it released and post it in its round's channel, once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.posts import hints as hint_posts
from bot.services import hints
from bot.services.hints import HintError
from storage.models import HintStatus, RoundStatus


def release_hint(*, session: Session, hint_id: int, now: datetime) -> str:
    """Queue the hint's post (once: keyed by hint) and mark it released; returns the key.

    The scheduler calls this when the hint is due; an admin may call it for a missed hint.
    """
    hint = hints.require(session=session, hint_id=hint_id)
    if hint.status == HintStatus.CANCELLED:
        raise HintError(f"hint #{hint.id} is cancelled")
    if hint.round.status == RoundStatus.CANCELLED:
        raise HintError(f"round #{hint.round_id} is cancelled")
    key = hint_posts.release_key(hint.id)
    if hint.status != HintStatus.RELEASED:
        number = len(hints.released(session=session, round_id=hint.round_id)) + 1
        hint_posts.queue_hint(session=session, hint=hint, number=number)
        hints.mark_released(session=session, hint=hint, now=now)
    return key
