"""Leaderboard posts: the pinned board in the round's channel, and `/puzzle leaderboard`.

The pinned board is one message per round, posted once and then edited in place as verdicts
arrive (``refresh_pinned_leaderboard``); at closing it turns into the final standings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot import outbox
from bot.services import leaderboards, overview
from bot.views.leaderboard import (
    build_all_time_leaderboard_message,
    build_pinned_leaderboard_message,
    build_round_leaderboard_message,
)
from storage.models import OutboxMessage, OutboxStatus, Round, utcnow


def pinned_key(round_id: int) -> str:
    return f"round:{round_id}:leaderboard"


def refresh_pinned_leaderboard(
    *, session: Session, round_id: int, now: datetime | None = None
) -> OutboxMessage | None:
    """Queue the pinned leaderboard post, or an edit of it carrying the current standings.

    The first call posts (key ``round:{id}:leaderboard``) and queues its pin with it (key
    ``round:{id}:leaderboard:pin``, ``pins_add`` threaded on the post: the outbox fills in the
    post's ts once it is sent); later calls queue ``chat_update``s keyed
    ``round:{id}:leaderboard:update:{n}`` whose ``thread_key`` is the post. Calls coalesce: a post
    or edit still pending is rewritten in place rather than queueing another, and nothing is queued
    when the standings have not changed. Returns the row that will carry the fresh content, or
    None if none needed.

    The round's row is locked first (``FOR UPDATE``; a no-op on SQLite, whose writers are
    serialised anyway), so two workers recording verdicts at once refresh one after the other and
    the second one's board includes the first one's verdict.
    """
    session.scalars(  # populate_existing: what we waited for may have changed the round
        select(Round)
        .where(Round.id == round_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    board = leaderboards.round_leaderboard(session=session, round_id=round_id, now=now)
    content = build_pinned_leaderboard_message(board)
    key = pinned_key(round_id)
    # populate_existing: the dispatcher updates these rows from other sessions (status, ts).
    post = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.idempotency_key == key)
        .execution_options(populate_existing=True)
    ).first()
    if post is None:
        post = outbox.enqueue(
            session=session,
            key=key,
            method="chat_postMessage",
            payload={"channel": board.channel_id, **content},
        )
        _queue_pin(session, key, board.channel_id)
        return post
    if post.status == OutboxStatus.FAILED:
        return None  # the post never made it (e.g. the bot is not in the channel): nothing to edit
    _queue_pin(
        session, key, board.channel_id
    )  # no-op once queued (a row from before pins rode along)
    updates = list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.idempotency_key.like(f"{key}:update:%"))
            .order_by(OutboxMessage.id)
            .execution_options(populate_existing=True)
        )
    )
    last = updates[-1] if updates else post
    if _content(last.payload) == content:
        return None
    if last.status == OutboxStatus.PENDING and _rewrite_pending(session, last, content):
        return last
    return outbox.enqueue(
        session=session,
        key=f"{key}:update:{len(updates) + 1}",
        method="chat_update",
        payload={"channel": board.channel_id, **content},
        thread_key=key,
    )


def _queue_pin(session: Session, key: str, channel_id: str) -> None:
    """Pin the post once the outbox has sent it (its ts becomes the pin's ``timestamp``)."""
    outbox.enqueue(
        session=session,
        key=f"{key}:pin",
        method="pins_add",
        payload={"channel": channel_id},
        thread_key=key,
    )


def _content(payload: dict[str, Any]) -> dict[str, Any]:
    return {"text": payload.get("text"), "blocks": payload.get("blocks")}


def _rewrite_pending(session: Session, row: OutboxMessage, content: dict[str, Any]) -> bool:
    """Swap the content of a row not yet sent; False if a dispatcher has already claimed it.

    The dispatcher claims a row only if its attempts are unchanged and ``next_attempt_at`` is not
    after the moment it started, so moving ``next_attempt_at`` to now also makes a dispatcher that
    read the old payload skip the row; it sends the new payload on its next pass.
    """
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == row.id,
            OutboxMessage.status == OutboxStatus.PENDING,
            OutboxMessage.attempts == row.attempts,
        )
        .values(payload={**row.payload, **content}, next_attempt_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount == 1


def leaderboard_message(*, session: Session, user_id: str, now: datetime) -> dict[str, Any]:
    """`/puzzle leaderboard`: the open round's board for ``user_id``, else the all-time board."""
    current = overview.current(session=session, now=now)
    if current.round is not None:
        board = leaderboards.round_leaderboard(session=session, round_id=current.round.id, now=now)
        return build_round_leaderboard_message(board, viewer_id=user_id)
    return build_all_time_leaderboard_message(
        leaderboards.all_time_leaderboard(session=session, now=now)
    )
