"""The App Home admin panel: which modal each button opens (the caller has checked the role)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.grammar.usage import ROUND_USAGE
from bot.services import rounds
from bot.settings import Settings
from bot.views import home as home_views
from bot.views.announcements import build_hint_modal
from bot.views.puzzle import build_error_modal
from storage.models import utcnow


def modal_for(
    *, session: Session, settings: Settings, action_id: str, now: datetime | None = None
) -> dict[str, Any]:
    now = now or utcnow()
    if action_id == home_views.ADMIN_HINT:
        round_ = rounds.current(session=session, now=now) or rounds.upcoming(
            session=session, now=now
        )
        if round_ is None:
            return build_error_modal("No round is open or planned: plan one first.")
        return build_hint_modal(round_=round_, tz_name=settings.timezone, initial=now)
    return home_views.build_admin_modal(action_id, round_usage=ROUND_USAGE)
