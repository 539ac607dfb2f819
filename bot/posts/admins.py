"""Notices to the puzzle admins (a post missed or late, a worker that cannot verify)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot import outbox
from bot.services import admins
from bot.views.announcements import build_admin_notice


def notify_admins(*, session: Session, settings: Any, key: str, text: str) -> None:
    """Queue a notice to the admin channel, or to each admin's DM when none is configured
    (once per recipient: the outbox key is ``key:recipient``)."""
    if settings.admin_channel:
        recipients = [settings.admin_channel]
    else:
        recipients = admins.list_admins(session=session, configured=settings.admins)
    for recipient in recipients:
        outbox.enqueue(
            session=session,
            key=f"{key}:{recipient}",
            method="chat_postMessage",
            payload={"channel": recipient, **build_admin_notice(text)},
        )
