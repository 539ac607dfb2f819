"""Users and channels named in slash-command text, turned into Slack ids.

With ``should_escape: true`` (slack-manifest.yaml) Slack sends a user or channel picked from its
autocomplete as ``<@U0123ABCD|alice>`` / ``<#C0123ABCD|puzzles>`` (the ``|name`` part is sometimes
absent); a name typed without picking it arrives as plain text (``@alice``, ``#puzzles``). Escaped
forms and raw ids give the id directly; plain names are looked up in the workspace
(``users.list`` / ``conversations.list``) when a directory is at hand, and otherwise refused with a
message that says what to do. A name is never returned where an id belongs.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Protocol

USER_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
CHANNEL_MENTION = re.compile(r"^<#([CGZ][A-Z0-9]+)(?:\|[^>]*)?>$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
CHANNEL_ID = re.compile(r"^[CGZ][A-Z0-9]{2,}$")  # Slack channel names are lowercase: never this
PAGE = 200
MAX_PAGES = 50


class RefError(ValueError):
    """The text names no user/channel we can identify; the message is shown to the admin."""


class Directory(Protocol):
    """Looks plain names up in the workspace (``SlackDirectory``, or a fake in tests)."""

    def user_ids(self, name: str) -> list[str]: ...

    def channel_ids(self, name: str) -> list[str]: ...


def resolve_user(word: str, *, directory: Directory | None = None) -> str:
    """The user id ``word`` names: ``<@U…>``, ``<@U…|name>``, ``U…``, or a name (``@alice``)."""
    word = word.strip()
    match = USER_MENTION.match(word)
    if match:
        return match.group(1)
    if USER_ID.match(word.lstrip("@")):
        return word.lstrip("@")
    name = word.lstrip("@")
    if not name or word.startswith("<"):
        raise RefError(f"`{word}` is not a user: mention them, e.g. `@alice`.")
    return _one(
        "user",
        word,
        directory.user_ids(name) if directory is not None else None,
        hint="pick them from Slack's @-autocomplete so the command carries their id",
    )


def resolve_channel(word: str, *, directory: Directory | None = None) -> str:
    """The channel id ``word`` names: ``<#C…>``, ``<#C…|name>``, ``C…``, or a name (``#puzzles``)."""
    word = word.strip()
    match = CHANNEL_MENTION.match(word)
    if match:
        return match.group(1)
    if CHANNEL_ID.match(word):
        return word
    name = word.lstrip("#")
    if not name or word.startswith("<"):
        raise RefError(f"`{word}` is not a channel: name it like `#puzzles`.")
    return _one(
        "channel",
        word,
        directory.channel_ids(name) if directory is not None else None,
        hint="pick it from Slack's #-autocomplete, or give its id (channel details, bottom)",
    )


def _one(kind: str, word: str, found: list[str] | None, *, hint: str) -> str:
    if found is None:
        raise RefError(f"I cannot look up the {kind} `{word}` by name here; {hint}.")
    if not found:
        raise RefError(f"I found no {kind} named `{word}`; {hint}.")
    if len(found) > 1:
        ids = ", ".join(f"`{i}`" for i in found[:5])
        raise RefError(f"`{word}` names {len(found)} {kind}s ({ids}); {hint}.")
    return found[0]


class SlackDirectory:
    """Plain names looked up with the Web API (``users:read``, ``channels:read``,
    ``groups:read``); each list fetched once per command, at most, and only when needed."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._users: list[dict[str, Any]] | None = None
        self._channels: list[dict[str, Any]] | None = None

    def user_ids(self, name: str) -> list[str]:
        with self._lock:
            if self._users is None:
                self._users = self._all(lambda **kw: self.client.users_list(**kw), "members")
        wanted = name.casefold()
        return [
            u["id"]
            for u in self._users
            if not u.get("deleted")
            and wanted
            in {
                str(v).casefold()
                for v in (
                    u.get("name"),
                    (u.get("profile") or {}).get("display_name"),
                    (u.get("profile") or {}).get("display_name_normalized"),
                    (u.get("profile") or {}).get("real_name"),
                )
                if v
            }
        ]

    def channel_ids(self, name: str) -> list[str]:
        with self._lock:
            if self._channels is None:
                self._channels = self._all(
                    lambda **kw: self.client.conversations_list(**kw),
                    "channels",
                    types="public_channel,private_channel",
                    exclude_archived=True,
                )
        wanted = name.casefold()
        return [c["id"] for c in self._channels if str(c.get("name", "")).casefold() == wanted]

    def _all(self, method: Any, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        from slack_sdk.errors import SlackApiError

        items: list[dict[str, Any]] = []
        cursor = None
        try:
            for _ in range(MAX_PAGES):
                response = method(limit=PAGE, cursor=cursor, **kwargs)
                items += response.get(key) or []
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else exc
            raise RefError(
                f"Slack did not let me look names up ({error}); use a mention picked from "
                "the autocomplete instead."
            ) from exc
        return items
