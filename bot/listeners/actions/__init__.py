"""Buttons: App Home refresh / submit, and the admin panel (admin-only, see listeners.authz)."""

from __future__ import annotations

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.flows import admin_panel, puzzle_command
from bot.listeners.authz import require_admin
from bot.listeners.events.home import publish_home
from bot.views.home import ADMIN_ACTIONS, HOME_REFRESH, OPEN_SUBMIT
from storage.db import session_scope


def register(app: App) -> None:
    for action_id in ADMIN_ACTIONS:
        app.action(action_id, middleware=[require_admin])(open_admin_modal)
    app.action(HOME_REFRESH)(refresh_home)
    app.action(OPEN_SUBMIT)(open_submit_modal)


def open_admin_modal(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    action_id = body["actions"][0]["action_id"]
    with session_scope(context["db"]) as session:
        view = admin_panel.modal_for(
            session=session, settings=context["settings"], action_id=action_id
        )
    client.views_open(trigger_id=body["trigger_id"], view=view)


def refresh_home(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    publish_home(client=client, context=context, user_id=body["user"]["id"])


def open_submit_modal(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    with session_scope(context["db"]) as session:
        result = puzzle_command.run_puzzle_command(
            session=session, settings=context["settings"], user_id=body["user"]["id"], text="submit"
        )
    if result.modal is not None:
        client.views_open(trigger_id=body["trigger_id"], view=result.modal)
