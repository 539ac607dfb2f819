"""A round's lifecycle posts: announce it at opening; at closing, post its solutions and turn
the pinned leaderboard into the final standings.

The scheduler's tick calls these when a round is due; admins call them for a post missed while
the bot was down. Each is idempotent: the post is queued under a fixed key, so it goes out once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot import outbox
from bot.posts import leaderboards as leaderboard_posts
from bot.posts import rounds as round_posts
from bot.services import leaderboards, round_results, rounds
from bot.services.rounds import RoundError
from storage.models import Round, RoundStatus


def announce_round(*, session: Session, round_id: int, now: datetime) -> str:
    """Queue the round's announcement (once: keyed by round) and mark the round open."""
    round_ = rounds.require(session=session, round_id=round_id)
    if round_.status == RoundStatus.CANCELLED:
        raise RoundError(f"round #{round_id} is cancelled")
    key = round_posts.queue_announcement(session=session, round_=round_)
    if round_.status == RoundStatus.SCHEDULED:
        round_.status = RoundStatus.OPEN
    return key


def post_solutions(*, session: Session, round_id: int, now: datetime) -> str:
    """Queue the round's solutions post (once) and record that the solutions were posted."""
    round_ = rounds.require(session=session, round_id=round_id)
    if round_.status == RoundStatus.CANCELLED:
        raise RoundError(f"round #{round_id} is cancelled")
    if round_.closes_at > now:
        raise RoundError(f"round #{round_id} is still open; its solutions are posted at closing")
    key = round_posts.queue_solutions(
        session=session,
        round_=round_,
        results=round_results.results(session=session, round_id=round_.id),
        next_round=rounds.next_round(session=session, round_=round_),
    )
    round_.status = RoundStatus.SOLUTIONS_POSTED
    _final_standings(session=session, round_=round_, now=now)
    return key


def _final_standings(*, session: Session, round_: Round, now: datetime) -> None:
    """After the solutions post (queued first, so sent first): the pinned leaderboard turns into
    the final standings, private scores included. It is posted now if no verdict posted it during
    the round; a round without a single verified submission gets none."""
    pinned = outbox.get(session=session, key=leaderboard_posts.pinned_key(round_.id))
    if pinned is None:
        board = leaderboards.round_leaderboard(session=session, round_id=round_.id, now=now)
        if not board.entries:
            return
    leaderboard_posts.refresh_pinned_leaderboard(session=session, round_id=round_.id, now=now)
