"""Global middleware: database + acting user (with role) in the context, duplicate deliveries dropped."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import BoltContext, BoltResponse
from sqlalchemy.orm import Session, sessionmaker

from bot.flows import upload as upload_flow
from bot.outbox import Dispatcher
from bot.services import admins, deliveries, uploads
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
    """Record each Events API delivery's ``event_id`` on arrival; later copies only get a 200.

    A DM file share's files are recorded (``inbound_uploads``) in the same transaction, before
    the ack, so an upload Slack stops retrying is never lost. A repeated delivery still reaches the
    listener when one of its files is pending and abandoned (``context["inbound_uploads"]``: the
    file ids the listener processes).
    """
    event = body.get("event") or {} if body.get("type") == "event_callback" else {}
    event_id = body.get("event_id") if body.get("type") == "event_callback" else None
    files = uploads.dm_file_shares(event)
    if not event_id and not files:
        return next()
    with session_scope(context["db"]) as session:
        first = (
            deliveries.first_delivery(session=session, key=f"event:{event_id}")
            if event_id
            else True
        )
        if files:
            recorded = upload_flow.record(
                session=session,
                settings=context["settings"],
                user_id=event["user"],
                files=files,
                dm_channel=event.get("channel"),
                thread_ts=event.get("ts"),
            )
            context["inbound_uploads"] = [r.file_id for r in recorded if r.process]
    if not first and not context.get("inbound_uploads"):
        retry = request.headers.get("x-slack-retry-num", ["0"])[0] if request else "0"
        log.info("duplicate delivery of %s (retry %s) ignored", event_id, retry)
        return BoltResponse(status=200, body="")
    return next()
