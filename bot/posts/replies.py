"""Direct replies to one person: an admin modal's result, the DM help text, a refusal.

Each is queued under a key made from the Slack request it answers, so a retried request (Slack
resends an event or a view submission it thinks was lost) posts its reply once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot import outbox
from bot.views.puzzle import build_error_message, build_help_message, build_info_message


def admin_result(*, session: Session, view_id: str | None, user_id: str, reply: dict) -> None:
    """The outcome of an admin modal, to the admin who submitted it."""
    outbox.enqueue(
        session=session,
        key=f"admin:{view_id}:result",
        method="chat_postMessage",
        payload={"channel": user_id, **reply},
    )


def admin_info(*, session: Session, view_id: str | None, user_id: str, text: str) -> None:
    """A one-line confirmation of an admin modal (e.g. a scheduled hint)."""
    admin_result(session=session, view_id=view_id, user_id=user_id, reply=build_info_message(text))


def dm_help(*, session: Session, event_id: Any, channel: str) -> None:
    """The help text for a DM that is neither a file nor a thread reply."""
    outbox.enqueue(
        session=session,
        key=f"event:{event_id}:help",
        method="chat_postMessage",
        payload={"channel": channel, **build_help_message()},
    )


def not_an_admin(*, session: Session, action: str, request_id: str, user_id: str) -> None:
    """Tell a non-admin their admin request was refused (and logged)."""
    outbox.enqueue(
        session=session,
        key=f"refused:{action}:{request_id}",
        method="chat_postMessage",
        payload={
            "channel": user_id,
            **build_error_message("Only puzzle admins can do that. (This attempt was logged.)"),
        },
    )
