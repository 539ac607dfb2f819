"""Sending one row, and finding out whether an earlier attempt of it already reached Slack.

Every ``chat_postMessage`` carries the row's key as message metadata (``event_type``
``circuitboard_outbox``); a row attempted before is first looked up in its channel
(``conversations.replies`` for a thread reply, else ``conversations.history``), and a
``files_upload_v2`` by the shared file's name and title.
"""

from __future__ import annotations

import base64
import logging
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

# Errors that no retry can fix: give up at once (the row stays visible as failed).
FATAL_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "no_permission",
        "missing_scope",
        "invalid_blocks",
        "msg_too_long",
        "msg_blocks_too_long",
        "no_text",
        "invalid_arguments",
        "user_not_found",
        "cant_update_message",
        "message_not_found",
    }
)
METADATA_EVENT_TYPE = "circuitboard_outbox"
LOOKUP_MARGIN_S = 600.0  # clock skew between us and Slack, when bounding the lookup
LOOKUP_PAGE = 100
LOOKUP_PAGES = 5


def call(client: Any, method: str, payload: dict[str, Any], key: str) -> Any:
    kwargs = dict(payload)
    if method == "files_upload_v2":
        if "content_b64" in kwargs:
            kwargs["content"] = base64.b64decode(kwargs.pop("content_b64"))
        if kwargs.get("channel"):
            # Slack shares a file only into a conversation (C/G/D/Z...): a user id is refused
            # with invalid_arguments, so open (or find) the bot's DM with that user first.
            kwargs["channel"] = _lookup_channel(client, str(kwargs["channel"]))
    if method == "chat_postMessage":
        # The key travels with the post, so a retry can tell whether Slack already has it.
        kwargs["metadata"] = {"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": key}}
    return getattr(client, method)(**kwargs)


class LookupUnavailable(Exception):
    """The read-back cannot work for this row (e.g. a missing scope): posting is the fallback."""


def _lookup_channel(client: Any, channel: str) -> str:
    """The conversation id for ``channel``: a user id becomes the bot's DM with them (only
    ``chat.postMessage`` accepts a user id; reading history and sharing files need the DM)."""
    if channel[:1] in ("U", "W"):
        response = client.conversations_open(users=channel)
        return str(response["channel"]["id"])
    return channel


def _matches(message: dict[str, Any], method: str, key: str, payload: dict[str, Any]) -> bool:
    if method == "chat_postMessage":
        metadata = message.get("metadata") or {}
        event_payload = metadata.get("event_payload") or {}
        return metadata.get("event_type") == METADATA_EVENT_TYPE and event_payload.get("key") == key
    # files_upload_v2: uploads carry no metadata; the shared file's name and title identify the
    # row's file (a plot's filename names its submission and attempt).
    for shared in message.get("files") or []:
        if shared.get("name") == payload.get("filename") and (
            payload.get("title") is None or shared.get("title") == payload.get("title")
        ):
            return True
    return False


def find_sent(
    *, client: Any, method: str, key: str, payload: dict[str, Any], since: datetime
) -> tuple[str, str] | None:
    """Our earlier post of this row, if Slack holds it: ``(channel, ts)``; else None.

    Raises ``LookupUnavailable`` when the lookup itself cannot be made (the row is then posted,
    as before this existed); any other error propagates (the attempt is retried later).
    """
    channel = payload.get("channel")
    if not channel:
        raise LookupUnavailable("no channel")
    try:
        channel = _lookup_channel(client, str(channel))
        kwargs: dict[str, Any] = {
            "channel": channel,
            "include_all_metadata": True,
            "oldest": f"{since.timestamp() - LOOKUP_MARGIN_S:.6f}",
            "limit": LOOKUP_PAGE,
        }
        thread_ts = payload.get("thread_ts")  # replies come oldest first; DM threads are short
        cursor = None
        for _ in range(LOOKUP_PAGES):
            if cursor:
                kwargs["cursor"] = cursor
            if thread_ts:
                response = client.conversations_replies(ts=thread_ts, **kwargs)
            else:  # newest first: an earlier attempt of this row is among the latest messages
                response = client.conversations_history(**kwargs)
            for message in response.get("messages") or []:
                if _matches(message, method, key, payload) and message.get("ts"):
                    return channel, str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
    except SlackApiError as exc:
        code = exc.response.get("error") if exc.response is not None else None
        if code in FATAL_ERRORS:
            raise LookupUnavailable(str(code)) from exc
        raise
    log.warning(
        "outbox %s: not found in the last %d messages; posting", key, LOOKUP_PAGES * LOOKUP_PAGE
    )
    return None
