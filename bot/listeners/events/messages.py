"""A DM to the bot: a shared `.py`/`.ipynb` file becomes a submission; text gets the help."""

from __future__ import annotations

from slack_bolt import BoltContext

from bot.flows import upload as upload_flow
from bot.listeners import uploads as upload_listener
from bot.posts import replies
from bot.services import uploads
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
        # Recorded before the ack by the dedupe middleware; here only when it did not run.
        file_ids = context.get("inbound_uploads")
        if file_ids is None:
            with session_scope(factory) as session:
                recorded = upload_flow.record(
                    session=session,
                    settings=context["settings"],
                    user_id=user_id,
                    files=uploads.dm_file_shares(event),
                    dm_channel=channel,
                    thread_ts=ts,
                )
            file_ids = [r.file_id for r in recorded if r.process]
        upload_listener.hand_off(file_ids, context)  # downloads off this thread
    elif not event.get("thread_ts"):  # chatting in a verdict thread needs no help text
        with session_scope(factory) as session:
            replies.dm_help(session=session, event_id=body.get("event_id") or ts, channel=channel)
    context["outbox"].wake()
