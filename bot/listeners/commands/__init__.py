"""Slash commands."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners.commands.puzzle import puzzle_command


def register(app: App) -> None:
    app.command("/puzzle")(puzzle_command)
