"""App Home: rendered fresh each time the tab is opened (publishing replaces the view, so it is
idempotent by nature and goes straight to Slack rather than through the outbox)."""

from __future__ import annotations

from slack_bolt import BoltContext
from slack_sdk import WebClient

from bot.flows import home
from storage.db import session_scope


def app_home_opened(event: dict, client: WebClient, context: BoltContext) -> None:
    if event.get("tab", "home") != "home":
        return
    publish_home(client=client, context=context, user_id=event["user"])


def publish_home(*, client: WebClient, context: BoltContext, user_id: str) -> None:
    with session_scope(context["db"]) as session:
        view = home.build_for(session=session, settings=context["settings"], user_id=user_id)
    client.views_publish(user_id=user_id, view=view)
