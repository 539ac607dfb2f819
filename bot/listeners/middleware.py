"""Global middleware: database + acting user (with role) in the context, duplicate deliveries dropped."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import BoltContext, BoltResponse
from sqlalchemy.orm import Session, sessionmaker

from bot.outbox import Dispatcher
from bot.services import admins, deliveries
from bot.settings import Settings
from storage.db import session_scope

log = logging.getLogger(__name__)


@dataclass
class Actor:
    """The user behind a request. The role is looked up on first use, keeping acks fast."""

    user_id: str | None
    settings: Settings
    session_factory: sessionmaker[Session]
    _is_admin: bool | None = field(default=None, repr=False)

    @property
    def is_admin(self) -> bool:
        if self._is_admin is None:
            if self.user_id is None:
                self._is_admin = False
            else:
                with session_scope(self.session_factory) as session:
                    self._is_admin = admins.is_admin(
                        session=session, user_id=self.user_id, configured=self.settings.admins
                    )
        return self._is_admin

    @property
    def role(self) -> str:
        return "admin" if self.is_admin else "member"


def inject_context(
    *, settings: Settings, session_factory: sessionmaker[Session], dispatcher: Dispatcher
) -> Any:
    def inject(context: BoltContext, next: Any) -> Any:
        context["settings"] = settings
        context["db"] = session_factory
        context["outbox"] = dispatcher
        context["actor"] = Actor(
            user_id=context.user_id, settings=settings, session_factory=session_factory
        )
        return next()

    return inject


def dedupe_deliveries(body: dict, context: BoltContext, next: Any, request: Any) -> Any:
    """Record each Events API delivery's ``event_id`` on arrival; later copies only get a 200."""
    event_id = body.get("event_id") if body.get("type") == "event_callback" else None
    if not event_id:
        return next()
    with session_scope(context["db"]) as session:
        first = deliveries.first_delivery(session=session, key=f"event:{event_id}")
    if not first:
        retry = request.headers.get("x-slack-retry-num", ["0"])[0] if request else "0"
        log.info("duplicate delivery of %s (retry %s) ignored", event_id, retry)
        return BoltResponse(status=200, body="")
    return next()
