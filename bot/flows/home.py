"""App Home for one user: the same data as `/puzzle`, `/puzzle me` and the leaderboard, one view."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.services import admins, leaderboards, overview, users
from bot.settings import Settings
from bot.views.home import build_home_view
from bot.views.leaderboard import leaderboard_home_blocks
from storage.models import utcnow


def build_for(
    *, session: Session, settings: Settings, user_id: str, now: datetime | None = None
) -> dict[str, Any]:
    now = now or utcnow()
    users.ensure(session=session, user_id=user_id)
    current = overview.current(session=session, now=now)
    round_id = current.round.id if current.round is not None else None
    mine = overview.my_submissions(session=session, user_id=user_id, round_id=round_id)
    board = (
        leaderboards.round_leaderboard(session=session, round_id=round_id, now=now)
        if round_id is not None
        else None
    )
    all_time = leaderboards.all_time_leaderboard(session=session, now=now)
    return build_home_view(
        overview=current,
        mine=mine,
        leaderboard=leaderboard_home_blocks(board, all_time, viewer_id=user_id),
        is_admin=admins.is_admin(session=session, user_id=user_id, configured=settings.admins),
    )
