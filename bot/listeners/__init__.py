"""Slack listeners: thin functions that ack, validate, call one service and render one view."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import actions, commands, events, modals


def register_listeners(app: App) -> None:
    commands.register(app)
    events.register(app)
    actions.register(app)
    modals.register(app)
