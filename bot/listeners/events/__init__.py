"""Events API: DM messages (file uploads) and App Home."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners.events.home import app_home_opened
from bot.listeners.events.messages import direct_message


def register(app: App) -> None:
    app.event("message")(direct_message)
    app.event("app_home_opened")(app_home_opened)
