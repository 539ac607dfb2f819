"""The worker's own outbox sender: a verdict reaches Slack without waiting for the bot."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient

from bot.outbox import Dispatcher
from bot.settings import Settings
from bot.worker import runtime

_senders: dict[str, Any] = {}

WORKER_OUTBOX_INTERVAL_S = 5.0
"""The worker's own outbox pass between wakes: a backstop, the bot's dispatcher sends too."""


def send_posts(settings: Settings) -> None:
    """Send the posts this worker just committed, now, from this process.

    Called after each commit that queued posts (explicitly, not from a commit hook), so a
    verdict reaches Slack without waiting for another process to look. The outbox's claim makes
    this safe beside the bot's own dispatcher: each row is sent by whichever claims it first.
    Without a bot token (console mode) the process that has the client sends them.
    """
    if settings.slack_bot_token is None:
        return
    sender = _senders.get(settings.db_url)
    if sender is None:
        client = WebClient(
            token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
        )
        sender = Dispatcher(
            session_factory=runtime.sessions(settings),
            client=client,
            interval=WORKER_OUTBOX_INTERVAL_S,
        ).start()
        _senders[settings.db_url] = sender
    sender.wake()


def forget_inherited() -> None:
    """A dispatcher thread does not survive a fork: a child starts its own."""
    _senders.clear()


def stop_senders() -> None:
    """Stop the outbox senders this process started (tests; a worker's threads end with it)."""
    while _senders:
        _, sender = _senders.popitem()
        sender.stop()
