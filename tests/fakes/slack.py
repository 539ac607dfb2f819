"""A local fake of Slack's Web API (HTTP on 127.0.0.1) that records every call.

Point a ``WebClient`` (or ``CIRCUITBOARD_SLACK_API_URL``) at ``fake.api_url``. It answers the
methods the bot uses with Slack-shaped JSON, serves uploaded-file downloads (``fake.add_file``)
only to requests bearing the bot token, implements the three steps of ``files_upload_v2``, and can
simulate failures: ``fake.rate_limit("chat.postMessage", times=1, retry_after=1)`` answers HTTP 429
``ratelimited`` with ``Retry-After``; ``fake.fail(method, "channel_not_found")`` any other error.

Posted messages (with their ``metadata``) and shared files are kept per conversation in
``fake.messages`` and served back by ``conversations.history`` / ``conversations.replies``
(metadata only with ``include_all_metadata``); ``pins.add`` answers ``already_pinned`` the second
time, as Slack does.

Use the ``fake_slack`` pytest fixture (mounted in tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-1-fake-app-token"  # app-level token (connections:write) for Socket Mode
BOT_USER_ID = "U0BOTUSER1"
TEAM_ID = "T0FAKE"
# Id shapes (Slack's are 9-11 characters; the length is not checked, so short fixture ids like
# "U1" still read as user ids): a conversation is C (channel), G (private/mpim), D (DM) or
# Z; a user U or W (Enterprise Grid); a file F.
CONVERSATION_ID = re.compile(r"^[CGDZ][A-Z0-9]+$")
USER_ID = re.compile(r"^[UW][A-Z0-9]+$")
FILE_ID = re.compile(r"^F[A-Z0-9]+$")
TRIGGER_TTL_S = 3.0  # a trigger_id is good for 3 seconds
MAX_TEXT = 40_000  # chat.postMessage's text (Slack truncates past it; the fake refuses)
MAX_BLOCKS_JSON = 12_000  # the blocks of one message: Slack answers msg_blocks_too_long past ~12k
MAX_VIEW_JSON = 250_000  # a view's total JSON


@dataclass(frozen=True)
class _Rule:
    required: tuple[str, ...] = ()
    users: tuple[str, ...] = ()  # arguments that must be user ids


# Each Web API method the fake serves: the arguments Slack requires, and which hold user ids.
# (Conversation ids are checked per method, with the error Slack gives.)
_RULES: dict[str, _Rule] = {
    "auth.test": _Rule(),
    "chat.postMessage": _Rule(("channel",)),
    "chat.update": _Rule(("channel", "ts")),
    "chat.postEphemeral": _Rule(("channel", "user"), users=("user",)),
    "conversations.history": _Rule(("channel",)),
    "conversations.replies": _Rule(("channel", "ts")),
    "conversations.open": _Rule(("users",), users=("users",)),
    "conversations.join": _Rule(("channel",)),
    "conversations.list": _Rule(),
    "users.list": _Rule(),
    "users.info": _Rule(("user",), users=("user",)),
    "views.open": _Rule(("trigger_id", "view")),
    "views.publish": _Rule(("user_id", "view"), users=("user_id",)),
    "views.update": _Rule(("view",)),
    "pins.add": _Rule(("channel", "timestamp")),
    "files.getUploadURLExternal": _Rule(("filename", "length")),
    "files.completeUploadExternal": _Rule(("files",)),
    "files.info": _Rule(("file",)),
    "apps.connections.open": _Rule(),
}


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)


class FakeSlack:
    """The server's state; thread-safe, inspected by tests."""

    def __init__(self, *, token: str = BOT_TOKEN, app_token: str = APP_TOKEN) -> None:
        self.token = token
        self.app_token = app_token
        self.socket_mode_url: str | None = None  # what apps.connections.open hands out
        self.calls: list[Call] = []
        self.files: dict[str, tuple[str, bytes]] = {}  # download path -> (name, content)
        self.uploads: dict[str, bytes] = {}  # file id -> bytes uploaded via files_upload_v2
        self.users: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}  # conversation id -> messages
        self.pins: set[tuple[str, str]] = set()
        self._upload_names: dict[str, str] = {}  # file id -> filename
        self._failures: dict[str, list[tuple[str, int, float | None]]] = {}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self.download_count = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # channel id -> {"id", "name", "is_private", "members"}. With ``auto_channels`` an unknown
        # C/G id is created with the bot as a member (older fixtures); strict tests turn it off and
        # declare channels with ``add_channel`` (the bot is not a member until invited).
        self.channels: dict[str, dict[str, Any]] = {}
        self.auto_channels = True
        self.triggers: dict[str, float] = {}  # trigger_id -> when issued (monotonic)
        self.strict_triggers = False  # views.open accepts only triggers from new_trigger()
        self.strict_updates = False  # chat.update of an unknown ts -> message_not_found
        self.file_infos: dict[str, dict[str, Any]] = {}  # files.info answers
        # Slack answers ok to chat.postEphemeral but shows it only to a user active in that
        # conversation right then: these users' ephemerals are never seen.
        self.inactive_users: set[str] | None = None
        self.ephemerals_seen: list[dict[str, Any]] = []
        self.pending_shares: list[tuple[str, dict[str, Any]]] = []
        self.hold_shares = False  # keep file shares pending until complete_shares()
        self.download_failures: dict[str, tuple[int, int]] = {}  # path -> (status, times left)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, *, port: int = 0) -> FakeSlack:
        fake = self

        class Handler(_Handler):
            state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.request_queue_size = 256
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # --- test helpers ----------------------------------------------------------------------
    def add_file(self, file_id: str, name: str, content: bytes) -> str:
        """Host a file as Slack would; returns its ``url_private_download``."""
        path = f"/files-pri/{TEAM_ID}-{file_id}/download/{quote(name)}"
        with self._lock:
            self.files[path] = (name, content)
        return self.base_url + path

    def add_user(self, user_id: str, *, name: str | None = None, tz: str = "UTC") -> None:
        self.users[user_id] = {
            "id": user_id,
            "name": name or user_id.lower(),
            "real_name": name or user_id,
            "tz": tz,
            "profile": {"display_name": name or user_id, "real_name": name or user_id},
        }

    def add_channel(
        self, channel_id: str, name: str, *, private: bool = False, bot_member: bool = False
    ) -> None:
        """A channel; the bot is not in it until ``invite_bot`` (an admin's /invite)."""
        assert CONVERSATION_ID.match(channel_id) and channel_id[0] in "CG", channel_id
        with self._lock:
            self.channels[channel_id] = {
                "id": channel_id,
                "name": name,
                "is_private": private,
                "members": {BOT_USER_ID} if bot_member else set(),
            }

    def invite_bot(self, channel_id: str) -> None:
        with self._lock:
            self.channels[channel_id]["members"].add(BOT_USER_ID)

    def slash_text(self, typed: str, *, should_escape: bool) -> str:
        """A slash command's ``text`` as Slack sends what a user typed.

        With ``should_escape`` a known ``@name`` / ``#name`` becomes ``<@U…|name>`` /
        ``<#C…|name>``; without it (or for names Slack does not know) the text stays as typed.
        """
        if not should_escape:
            return typed

        def user(match: re.Match[str]) -> str:
            name = match.group(1)
            for u in self.users.values():
                if name in (u["name"], u["profile"].get("display_name")):
                    return f"<@{u['id']}|{u['name']}>"
            return match.group(0)

        def channel(match: re.Match[str]) -> str:
            name = match.group(1)
            for c in self.channels.values():
                if c["name"] == name:
                    return f"<#{c['id']}|{name}>"
            return match.group(0)

        text = re.sub(r"(?<![<\w])@([\w.\-]+)", user, typed)
        return re.sub(r"(?<![<\w])#([a-z0-9_\-]+)", channel, text)

    def fail_download(self, url: str, *, status: int = 503, times: int = 1) -> None:
        """The next ``times`` downloads of ``url`` answer HTTP ``status`` (Slack's file host
        having a moment)."""
        with self._lock:
            self.download_failures[urlsplit(url).path] = (status, times)

    def add_file_info(self, file: dict[str, Any]) -> None:
        """What ``files.info`` answers for ``file["id"]`` (the full file object)."""
        with self._lock:
            self.file_infos[file["id"]] = file

    def rate_limit(self, method: str, *, times: int = 1, retry_after: float = 1) -> None:
        with self._lock:
            self._failures.setdefault(method, []).append(("ratelimited", times, retry_after))

    def fail(self, method: str, error: str, *, times: int = 1) -> None:
        with self._lock:
            self._failures.setdefault(method, []).append((error, times, None))

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] = lambda c: True,
        *,
        count: int = 1,
        timeout: float = 60.0,
    ) -> list[Call]:
        """Block until ``count`` calls to ``method`` match ``predicate``; returns them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self.calls if c.method == method and predicate(c)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    methods = [c.method for c in self.calls]
                    raise AssertionError(
                        f"timed out waiting for {count} x {method}; got {len(found)}; calls: {methods}"
                    )
                self._cond.wait(left)

    def response_url(self, name: str = "1") -> str:
        """A slash command ``response_url`` served here (calls recorded as ``response_url``)."""
        return f"{self.base_url}/respond/{name}"

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    # --- the API -------------------------------------------------------------------------
    def _record(self, method: str, args: dict[str, Any], token: str | None) -> None:
        with self._cond:
            self.calls.append(Call(method, args, token))
            self._cond.notify_all()

    def _injected_failure(self, method: str) -> tuple[str, float | None] | None:
        with self._lock:
            queue = self._failures.get(method)
            if not queue:
                return None
            error, times, retry_after = queue[0]
            if times <= 1:
                queue.pop(0)
            else:
                queue[0] = (error, times - 1, retry_after)
            return error, retry_after

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _store(self, channel: str, message: dict[str, Any]) -> None:
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": "BFAKE", **message}
        if not message.get("thread_ts"):
            message.pop("thread_ts", None)
        with self._lock:
            self.messages.setdefault(channel, []).append(message)

    def _read(self, channel: str, args: dict[str, Any], *, thread_ts: str | None) -> dict:
        with self._lock:
            stored = list(self.messages.get(channel, []))
        if thread_ts is None:  # the channel's top level (and broadcast replies), newest first
            found = [m for m in stored if m.get("thread_ts") in (None, m["ts"])][::-1]
        else:  # the parent and its replies, oldest first
            found = [m for m in stored if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]
        oldest = float(args.get("oldest") or 0)
        latest = float(args.get("latest") or "inf")
        found = [m for m in found if oldest < float(m["ts"]) <= latest]
        if str(args.get("include_all_metadata", "")).lower() not in ("1", "true"):
            found = [{k: v for k, v in m.items() if k != "metadata"} for m in found]
        start = int(args.get("cursor") or 0)
        limit = int(args.get("limit") or 100)
        page = found[start : start + limit]
        more = start + limit < len(found)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    # --- Slack's rules --------------------------------------------------------------------
    def _conversation(
        self, channel: Any, *, arg: str = "channel", error: str = "channel_not_found"
    ) -> tuple[str | None, dict | None]:
        """``(channel_id, None)`` for a conversation the bot may use, else ``(None, error_body)``."""
        if not isinstance(channel, str) or not CONVERSATION_ID.match(channel):
            return None, {
                "ok": False,
                "error": error,
                "detail": f"{arg}={channel!r} is not a conversation id",
            }
        if channel[0] == "D":
            return channel, None  # the bot's DM with a user
        with self._lock:
            known = self.channels.get(channel)
            if known is None and self.auto_channels:
                known = self.channels[channel] = {
                    "id": channel,
                    "name": channel.lower(),
                    "is_private": channel[0] == "G",
                    "members": {BOT_USER_ID},
                }
        if known is None:
            return None, {"ok": False, "error": "channel_not_found"}
        if BOT_USER_ID not in known["members"]:
            return None, {"ok": False, "error": "not_in_channel"}
        return channel, None

    def _check_blocks(self, blocks: Any, *, max_blocks: int) -> str | None:
        """Slack's ``invalid_blocks`` (parsed with slack_sdk's models) and size limits."""
        if blocks is None:
            return None
        if not isinstance(blocks, list):
            return "invalid_blocks_format"
        if len(blocks) > max_blocks:
            return "invalid_blocks"
        for block in blocks:
            try:
                parsed = Block.parse(block)
                if parsed is None or type(parsed) is Block:
                    return "invalid_blocks"
                parsed.validate_json()
            except Exception:
                return "invalid_blocks"
        if len(json.dumps(blocks)) > MAX_BLOCKS_JSON:
            return "msg_blocks_too_long"
        return None

    def _check_message(self, args: dict[str, Any]) -> str | None:
        text = args.get("text") or ""
        if not text and not args.get("blocks") and not args.get("attachments"):
            return "no_text"
        if len(text) > MAX_TEXT:
            return "msg_too_long"
        return self._check_blocks(args.get("blocks"), max_blocks=50)

    def _check_view(self, view: Any) -> str | None:
        if not isinstance(view, dict):
            return "invalid_arguments"
        try:
            parsed = View(**view)
            parsed.validate_json()
        except Exception:
            return "invalid_arguments"
        if len(json.dumps(view)) > MAX_VIEW_JSON:
            return "invalid_arguments"
        return self._check_blocks(view.get("blocks"), max_blocks=100)

    def new_trigger(self, *, at: float | None = None) -> str:
        """A ``trigger_id`` as Slack puts in an interaction payload; it expires after 3 s."""
        trigger = f"{next(self._ids)}.{TEAM_ID[1:]}.{uuid.uuid4().hex}"
        with self._lock:
            self.triggers[trigger] = time.monotonic() if at is None else at
        return trigger

    def expire_trigger(self, trigger_id: str) -> None:
        with self._lock:
            self.triggers[trigger_id] = float("-inf")

    def answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        rule = _RULES.get(method)
        if rule is None:
            return {"ok": False, "error": "unknown_method"}
        for name in rule.required:
            if args.get(name) in (None, ""):
                return {"ok": False, "error": "invalid_arguments", "detail": f"missing {name}"}
        for name in rule.users:
            values = str(args.get(name) or "").split(",") if args.get(name) else []
            if any(not USER_ID.match(v) for v in values):
                return {
                    "ok": False,
                    "error": "user_not_found",
                    "detail": f"{name}={args.get(name)!r}",
                }
        return getattr(self, "_" + method.replace(".", "_"))(args)

    def _auth_test(self, args: dict) -> dict:
        return {"ok": True, "user_id": BOT_USER_ID, "bot_id": "B0FAKEBOT", "team_id": TEAM_ID}

    def _post_channel(self, args: dict) -> tuple[str | None, dict | None]:
        channel = args.get("channel")
        if isinstance(channel, str) and USER_ID.match(channel):
            return "D" + channel[1:], None  # a user id posts in the app's DM with them
        return self._conversation(channel)

    def _chat_postMessage(self, args: dict) -> dict:
        channel, error = self._post_channel(args)
        if error:
            return error
        problem = self._check_message(args)
        if problem:
            return {"ok": False, "error": problem}
        ts = self.next_ts()
        message = {
            "ts": ts,
            "text": args.get("text"),
            "thread_ts": args.get("thread_ts"),
            "blocks": args.get("blocks"),
        }
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        self._store(channel, {**message, "metadata": metadata} if metadata else message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_update(self, args: dict) -> dict:
        channel, error = self._conversation(args.get("channel"))
        if error:
            return error
        problem = self._check_message(args)
        if problem:
            return {"ok": False, "error": problem}
        ts = str(args.get("ts"))
        with self._lock:
            found = [m for m in self.messages.get(channel, []) if m["ts"] == ts]
            for stored in found:
                stored.update(text=args.get("text"), blocks=args.get("blocks"))
        if not found and self.strict_updates:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": channel, "ts": ts, "text": args.get("text")}

    def _chat_postEphemeral(self, args: dict) -> dict:
        channel, error = self._conversation(args.get("channel"))
        if error:
            return error
        problem = self._check_message(args)
        if problem:
            return {"ok": False, "error": problem}
        user = str(args.get("user"))
        with self._lock:  # Slack only shows it to a user active in the client right now
            if self.inactive_users is None or user not in self.inactive_users:
                self.ephemerals_seen.append(
                    {"channel": channel, "user": user, "text": args.get("text")}
                )
        return {"ok": True, "message_ts": self.next_ts()}

    def _conversations_history(self, args: dict) -> dict:
        channel, error = self._conversation(args.get("channel"))
        return error or self._read(channel, args, thread_ts=None)

    def _conversations_replies(self, args: dict) -> dict:
        channel, error = self._conversation(args.get("channel"))
        return error or self._read(channel, args, thread_ts=str(args.get("ts")))

    def _views_open(self, args: dict) -> dict:
        trigger = str(args.get("trigger_id"))
        with self._lock:
            issued = self.triggers.pop(trigger, None) if self.strict_triggers else time.monotonic()
        if issued is None:
            return {"ok": False, "error": "invalid_trigger_id"}
        if time.monotonic() - issued > TRIGGER_TTL_S:
            return {"ok": False, "error": "expired_trigger_id"}
        problem = self._check_view(args.get("view"))
        return (
            {"ok": False, "error": problem}
            if problem
            else {"ok": True, "view": {"id": f"V{next(self._ids):08d}", **args["view"]}}
        )

    def _views_publish(self, args: dict) -> dict:
        problem = self._check_view(args.get("view"))
        return (
            {"ok": False, "error": problem}
            if problem
            else {"ok": True, "view": {"id": f"V{next(self._ids):08d}"}}
        )

    def _views_update(self, args: dict) -> dict:
        return self._views_publish(args)

    def _pins_add(self, args: dict) -> dict:
        channel, error = self._conversation(args.get("channel"))
        if error:
            return error
        pin = (channel, str(args.get("timestamp")))
        with self._lock:
            if pin in self.pins:
                return {"ok": False, "error": "already_pinned"}
            self.pins.add(pin)
        return {"ok": True}

    def _conversations_open(self, args: dict) -> dict:
        users = str(args.get("users") or "").split(",")
        if len(users) != 1:
            return {"ok": False, "error": "invalid_arguments"}  # the bot only opens 1:1 DMs
        return {"ok": True, "channel": {"id": "D" + users[0][1:]}}

    def _conversations_join(self, args: dict) -> dict:
        channel = str(args.get("channel"))
        with self._lock:
            known = self.channels.get(channel)
            if known is None:
                return {"ok": False, "error": "channel_not_found"}
            if known["is_private"]:
                return {"ok": False, "error": "method_not_supported_for_channel_type"}
            known["members"].add(BOT_USER_ID)
        return {"ok": True, "channel": {"id": channel, "name": known["name"]}}

    def _conversations_list(self, args: dict) -> dict:
        with self._lock:
            listed = [
                {
                    "id": c["id"],
                    "name": c["name"],
                    "is_private": c["is_private"],
                    "is_member": BOT_USER_ID in c["members"],
                }
                for c in self.channels.values()
            ]
        return self._page(listed, "channels", args)

    def _users_list(self, args: dict) -> dict:
        with self._lock:
            listed = list(self.users.values())
        return self._page(listed, "members", args)

    def _page(self, items: list, key: str, args: dict) -> dict:
        start = int(args.get("cursor") or 0)
        limit = int(args.get("limit") or 100)
        more = start + limit < len(items)
        return {
            "ok": True,
            key: items[start : start + limit],
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _users_info(self, args: dict) -> dict:
        user_id = str(args.get("user"))
        with self._lock:
            user = self.users.get(user_id)
        if user is None:
            user = {
                "id": user_id,
                "name": user_id.lower(),
                "real_name": user_id,
                "tz": "UTC",
                "profile": {"display_name": user_id, "real_name": user_id},
            }
        return {"ok": True, "user": user}

    def _files_getUploadURLExternal(self, args: dict) -> dict:
        file_id = f"F{next(self._ids):010d}"
        with self._lock:
            self._upload_names[file_id] = str(args.get("filename"))
        return {"ok": True, "file_id": file_id, "upload_url": f"{self.base_url}/upload/{file_id}"}

    def _files_completeUploadExternal(self, args: dict) -> dict:
        files = args.get("files")
        if isinstance(files, str):
            files = json.loads(files)
        channel = args.get("channel_id")
        if channel is not None:  # Slack: a conversation id, never a user id
            channel, error = self._conversation(
                channel, arg="channel_id", error="invalid_arguments"
            )
            if error:
                return error
        with self._lock:
            missing = [f["id"] for f in files if f["id"] not in self.uploads]
        if missing:
            return {"ok": False, "error": "invalid_arguments", "detail": f"not uploaded: {missing}"}
        if channel:  # the share appears in the channel (or thread) a moment later
            shared = [
                {"id": f["id"], "name": self._upload_names.get(f["id"]), "title": f.get("title")}
                for f in files
            ]
            share = {
                "ts": self.next_ts(),
                "text": args.get("initial_comment") or "",
                "thread_ts": args.get("thread_ts"),
                "files": shared,
                "upload": True,
            }
            with self._lock:
                self.pending_shares.append((channel, share))
            if not self.hold_shares:
                self.complete_shares()
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}

    def complete_shares(self) -> int:
        """Make the pending file shares appear in their conversations (Slack does it shortly
        after ``files.completeUploadExternal`` answers); returns how many."""
        with self._lock:
            shares, self.pending_shares = self.pending_shares, []
        for channel, share in shares:
            self._store(channel, share)
        return len(shares)

    def _apps_connections_open(self, args: dict) -> dict:
        if self.socket_mode_url is None:
            return {"ok": False, "error": "socket_mode_not_enabled"}
        return {"ok": True, "url": f"{self.socket_mode_url}?ticket={uuid.uuid4().hex}"}

    def _files_info(self, args: dict) -> dict:
        file_id = str(args.get("file"))
        with self._lock:
            info = self.file_infos.get(file_id)
        if info is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": info}


# --- file objects as Slack puts them in a file share's ``files`` -----------------------------
def hosted_file(file_id: str, name: str, url: str, size: int) -> dict[str, Any]:
    """An ordinary uploaded file (``mode: hosted``)."""
    return {
        "id": file_id,
        "created": 1700000000,
        "name": name,
        "title": name,
        "mimetype": "text/x-python",
        "filetype": "python",
        "pretty_type": "Python",
        "user": "U0ALICE001",
        "mode": "hosted",
        "is_external": False,
        "size": size,
        "url_private": url,
        "url_private_download": url,
    }


def snippet_file(file_id: str, title: str, url: str, size: int) -> dict[str, Any]:
    """A snippet made in Slack's composer: its name is the title, without an extension."""
    return {
        **hosted_file(file_id, title, url, size),
        "mode": "snippet",
        "mimetype": "text/plain",
        "filetype": "python",
        "preview": "def predict(tokens):",
        "lines": 2,
    }


def slack_connect_stub(file_id: str) -> dict[str, Any]:
    """A file shared from another organisation (Slack Connect): only its id; ``files.info``
    (with the bot's token) gives the rest."""
    return {"id": file_id, "file_access": "check_file_info", "created": 1700000000}


def hidden_by_limit_file(file_id: str) -> dict[str, Any]:
    """A file beyond the free plan's visible history: Slack hides everything but its id."""
    return {"id": file_id, "mode": "hidden_by_limit", "created": 1600000000}


def external_file(file_id: str, name: str) -> dict[str, Any]:
    """A link to a file on another service (Google Drive ...): nothing Slack can serve."""
    return {
        "id": file_id,
        "name": name,
        "title": name,
        "mode": "external",
        "is_external": True,
        "external_type": "gdrive",
        "url_private": "https://docs.google.com/document/d/1abc/edit",
        "filetype": "gdoc",
    }


class _Handler(BaseHTTPRequestHandler):
    state: FakeSlack
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8", headers)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ").strip() or None

    def do_GET(self) -> None:  # file downloads, and the Web API methods slack_sdk calls by GET
        parts = urlsplit(self.path)
        path = parts.path
        state = self.state
        if path.startswith("/api/"):
            self._api(
                path.removeprefix("/api/"), dict(parse_qsl(parts.query, keep_blank_values=True))
            )
            return
        if path not in state.files:
            self._send(404, b"not found", "text/plain")
            return
        if self._token() != state.token:
            # Slack answers an unauthenticated download with its HTML login page.
            self._send(200, b"<html>login</html>", "text/html")
            return
        with state._lock:
            status, times = state.download_failures.get(path, (200, 0))
            if times:
                state.download_failures[path] = (status, times - 1)
        if times:
            self._send(status, b"try again later", "text/plain")
            return
        name, content = state.files[path]
        with state._lock:
            state.download_count += 1
        self._send(200, content, "application/octet-stream")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        state = self.state
        if path.startswith("/upload/"):
            with state._lock:
                state.uploads[path.removeprefix("/upload/")] = raw
            self._send(200, b"OK - " + str(len(raw)).encode(), "text/plain")
            return
        if path.startswith("/respond/"):  # a slash command's response_url
            state._record("response_url", json.loads(raw or b"{}"), None)
            self._send(200, b"ok", "text/plain")
            return
        if not path.startswith("/api/"):
            self._send(404, b"not found", "text/plain")
            return
        method = path.removeprefix("/api/")
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            args = json.loads(raw or b"{}")
        else:
            args = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        self._api(method, args)

    def _api(self, method: str, args: dict[str, Any]) -> None:
        state = self.state
        for name in ("blocks", "view", "files", "attachments", "metadata"):
            if isinstance(args.get(name), str):
                with contextlib.suppress(ValueError):
                    args[name] = json.loads(args[name])
        token = self._token() or args.pop("token", None)
        state._record(method, args, token)
        failure = state._injected_failure(method)
        if failure is not None:
            error, retry_after = failure
            if error == "ratelimited":
                self._json(
                    429,
                    {"ok": False, "error": "ratelimited"},
                    {"Retry-After": str(int(retry_after or 1))},
                )
            else:
                self._json(200, {"ok": False, "error": error})
            return
        # apps.connections.open takes only the app-level token; everything else the bot token.
        expected = state.app_token if method == "apps.connections.open" else state.token
        if token != expected:
            wrong_kind = token in (state.token, state.app_token)
            self._json(
                200,
                {"ok": False, "error": "not_allowed_token_type" if wrong_kind else "invalid_auth"},
            )
            return
        self._json(200, state.answer(method, args))


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A running fake Slack Web API; ``fake_slack.api_url`` and ``fake_slack.token`` to connect."""
    fake = FakeSlack().start()
    try:
        yield fake
    finally:
        fake.stop()
