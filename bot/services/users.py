"""Slack users the bot has met: created on first contact, display name and DM channel remembered."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import SlackUser


def ensure(
    *,
    session: Session,
    user_id: str,
    display_name: str | None = None,
    dm_channel: str | None = None,
) -> SlackUser:
    """The user's row, created if new; non-empty names and DM channels update it."""
    user = session.get(SlackUser, user_id)
    if user is None:
        user = SlackUser(id=user_id, display_name=display_name, dm_channel=dm_channel)
        try:
            with session.begin_nested():  # two first contacts at once: the loser reads the winner
                session.add(user)
        except IntegrityError:
            found = session.get(SlackUser, user_id)
            if found is None:
                raise
            return found
        return user
    if display_name and user.display_name != display_name:
        user.display_name = display_name
    if dm_channel and user.dm_channel != dm_channel:
        user.dm_channel = dm_channel
    return user


def get(*, session: Session, user_id: str) -> SlackUser | None:
    return session.get(SlackUser, user_id)
