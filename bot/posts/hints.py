"""Hint posts: a released hint in its round's channel."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot import outbox
from bot.views.announcements import build_hint_post
from storage.models import Hint


def release_key(hint_id: int) -> str:
    return f"hint:{hint_id}:release"


def queue_hint(*, session: Session, hint: Hint, number: int) -> str:
    """Queue the post of ``hint`` as the round's hint ``number`` (once: keyed by hint)."""
    key = release_key(hint.id)
    payload = build_hint_post(hint=hint, number=number, round_=hint.round)
    outbox.enqueue(
        session=session,
        key=key,
        method="chat_postMessage",
        payload={"channel": hint.round.channel_id, **payload},
    )
    return key
