"""A DM to the bot: a shared `.py`/`.ipynb` file becomes a submission; text gets the help."""

from __future__ import annotations

from slack_bolt import BoltContext

from bot import outbox
from bot.services import uploads
from bot.views.puzzle import build_help_message
from storage.db import session_scope


def direct_message(event: dict, body: dict, context: BoltContext) -> None:
    if event.get("channel_type") != "im" or event.get("bot_id") or not event.get("user"):
        return  # channel chatter and our own posts
    subtype = event.get("subtype")
    if subtype not in (None, "file_share"):
        return  # edits, deletions, joins
    user_id, channel, ts = event["user"], event["channel"], event.get("ts")
    factory = context["db"]
    if subtype == "file_share" and event.get("files"):
        for file in event["files"][:3]:
            outcome = uploads.receive_upload(
                session_factory=factory,
                settings=context["settings"],
                user_id=user_id,
                file=file,
                dm_channel=channel,
                thread_ts=ts,
            )
            if outcome.error:
                with session_scope(factory) as session:
                    uploads.report_error(
                        session=session,
                        key=f"file:{file.get('id')}:error",
                        user_id=user_id,
                        text=outcome.error,
                        channel=channel,
                    )
    elif not event.get("thread_ts"):  # chatting in a verdict thread needs no help text
        with session_scope(factory) as session:
            outbox.enqueue(
                session=session,
                key=f"event:{body.get('event_id') or ts}:help",
                method="chat_postMessage",
                payload={"channel": channel, **build_help_message()},
            )
    context["outbox"].wake()
