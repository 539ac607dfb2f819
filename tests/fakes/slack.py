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
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

BOT_TOKEN = "xoxb-fake-bot-token"
BOT_USER_ID = "UBOT"
TEAM_ID = "T0FAKE"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)


class FakeSlack:
    """The server's state; thread-safe, inspected by tests."""

    def __init__(self, *, token: str = BOT_TOKEN) -> None:
        self.token = token
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
        path = f"/files-pri/{TEAM_ID}-{file_id}/download/{name}"
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

    def answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel") or args.get("channel_id")
        if isinstance(channel, str) and channel.startswith("U"):
            channel = "D" + channel[1:]  # posting to a user id lands in their DM with the bot
        if method == "auth.test":
            return {"ok": True, "user_id": BOT_USER_ID, "bot_id": "BFAKE", "team_id": TEAM_ID}
        if method in ("chat.postMessage", "chat.update"):
            ts = args.get("ts") if method == "chat.update" else self.next_ts()
            message = {"ts": ts, "text": args.get("text"), "thread_ts": args.get("thread_ts")}
            if method == "chat.postMessage":
                metadata = args.get("metadata")
                if isinstance(metadata, str):
                    metadata = json.loads(metadata)
                self._store(channel, {**message, "metadata": metadata} if metadata else message)
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "conversations.history":
            return self._read(channel, args, thread_ts=None)
        if method == "conversations.replies":
            return self._read(channel, args, thread_ts=str(args.get("ts")))
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self.next_ts()}
        if method in ("views.publish", "views.open", "views.update"):
            return {"ok": True, "view": {"id": f"V{next(self._ids):06d}"}}
        if method == "pins.add":
            pin = (channel, str(args.get("timestamp")))
            with self._lock:
                if pin in self.pins:
                    return {"ok": False, "error": "already_pinned"}
                self.pins.add(pin)
            return {"ok": True}
        if method == "conversations.open":
            user = str(args.get("users", "U0")).split(",")[0]
            return {"ok": True, "channel": {"id": "D" + user[1:]}}
        if method == "users.info":
            user_id = args.get("user", "")
            user = self.users.get(user_id) or {
                "id": user_id,
                "name": user_id.lower(),
                "real_name": user_id,
                "tz": "UTC",
                "profile": {"display_name": user_id, "real_name": user_id},
            }
            return {"ok": True, "user": user}
        if method == "files.getUploadURLExternal":
            file_id = f"FUP{next(self._ids):06d}"
            with self._lock:
                self._upload_names[file_id] = str(args.get("filename"))
            return {
                "ok": True,
                "file_id": file_id,
                "upload_url": f"{self.base_url}/upload/{file_id}",
            }
        if method == "files.completeUploadExternal":
            files = args.get("files")
            if isinstance(files, str):
                files = json.loads(files)
            if channel:  # the share appears as a message in the channel (or thread)
                shared = [
                    {
                        "id": f["id"],
                        "name": self._upload_names.get(f["id"]),
                        "title": f.get("title"),
                    }
                    for f in files
                ]
                self._store(
                    channel,
                    {
                        "ts": self.next_ts(),
                        "text": args.get("initial_comment") or "",
                        "thread_ts": args.get("thread_ts"),
                        "files": shared,
                        "upload": True,
                    },
                )
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        if method == "files.info":
            return {"ok": True, "file": {"id": args.get("file")}}
        return {"ok": False, "error": "unknown_method"}


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
        if token != state.token:
            self._json(200, {"ok": False, "error": "invalid_auth"})
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
