"""Round posts: the announcement at opening and the solutions post at closing."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot import outbox
from bot.services import rounds
from bot.services.round_data import RoundResults
from bot.views.announcements import build_round_announcement, build_solutions_post
from storage.models import Round


def announce_key(round_id: int) -> str:
    return f"round:{round_id}:announce"


def solutions_key(round_id: int) -> str:
    return f"round:{round_id}:solutions"


def queue_announcement(*, session: Session, round_: Round) -> str:
    """Queue the round's announcement in its channel (once: keyed by round); returns the key."""
    key = announce_key(round_.id)
    payload = build_round_announcement(round_=round_, puzzle=rounds.puzzle_for(round_))
    outbox.enqueue(
        session=session,
        key=key,
        method="chat_postMessage",
        payload={"channel": round_.channel_id, **payload},
    )
    return key


def queue_solutions(
    *, session: Session, round_: Round, results: RoundResults, next_round: Round | None
) -> str:
    """Queue the round's solutions post (once: keyed by round); returns the key."""
    key = solutions_key(round_.id)
    payload = build_solutions_post(
        round_=round_, puzzle=rounds.puzzle_for(round_), results=results, next_round=next_round
    )
    outbox.enqueue(
        session=session,
        key=key,
        method="chat_postMessage",
        payload={"channel": round_.channel_id, **payload},
    )
    return key
