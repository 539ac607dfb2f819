"""Shared by the end-to-end tests: signed Slack requests, the Bolt app in HTTP mode, real workers.

Everything here drives the system from its outside seams only: signed HTTP requests to the Bolt
app (as Slack sends them), the fake Slack Web API server (``tests/fakes/slack.py``), real
``circuitboard worker`` subprocesses (``support.workers``), and the scheduler's ``tick`` with an explicit ``now``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from fakes.slack import FakeSlack

T = TypeVar("T")

SIGNING_SECRET = "e2e-signing-secret"
MONTH_VERIFY = '{"heldout_size": 1000, "circuit_size": 300, "timeout_s": 45}'
"""Held-out sizes half the catalog's (still enough for the reference solution to pass with
``VERIFICATION_SEED``), and a 20 s sandbox wall clock so a hostile infinite loop ends soon."""
VERIFICATION_SEED = "e2e-seed"
FINAL = ("verified", "failed", "rejected")


def sign(body: str, *, secret: str = SIGNING_SECRET) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class SlackRequests:
    """Requests as Slack sends them to ``/slack/events``, signed with the signing secret."""

    url: str
    fake: FakeSlack
    http: httpx.Client

    def post(self, body: str, content_type: str, headers: dict | None = None) -> httpx.Response:
        all_headers = {"Content-Type": content_type, **sign(body), **(headers or {})}
        return self.http.post(self.url, content=body.encode(), headers=all_headers)

    def command(self, text: str, *, user: str, channel: str = "C0GENERAL") -> str:
        """Sends ``/puzzle <text>``; returns the name of its ``response_url`` on the fake server."""
        name = uuid.uuid4().hex[:10]
        body = urlencode(
            {
                "token": "legacy",
                "team_id": "T0FAKE",
                "channel_id": channel,
                "user_id": user,
                "command": "/puzzle",
                "text": text,
                "response_url": self.fake.response_url(name),
                "trigger_id": f"trig-{uuid.uuid4().hex[:8]}",
            }
        )
        response = self.post(body, "application/x-www-form-urlencoded")
        assert response.status_code == 200, response.text
        return name

    def command_answer(self, text: str, *, user: str, timeout: float = 30) -> dict[str, Any]:
        """``/puzzle <text>`` and the ephemeral answer posted to its response_url."""
        before = len(self.fake.calls_to("response_url"))
        self.command(text, user=user)
        calls = self.fake.wait_for("response_url", count=before + 1, timeout=timeout)
        return calls[before].args

    def event(self, event: dict, *, event_id: str | None = None) -> httpx.Response:
        body = json.dumps(
            {
                "token": "legacy",
                "team_id": "T0FAKE",
                "api_app_id": "A0FAKE",
                "type": "event_callback",
                "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}",
                "event_time": int(time.time()),
                "event": event,
            }
        )
        return self.post(body, "application/json")

    def share_file(
        self, *, user: str, file_id: str, name: str, content: bytes, ts: str
    ) -> dict[str, Any]:
        """A user DMs the bot a file (hosted by the fake server); returns the message event."""
        url = self.fake.add_file(file_id, name, content)
        event = {
            "type": "message",
            "subtype": "file_share",
            "channel": "D" + user[1:],
            "channel_type": "im",
            "user": user,
            "ts": ts,
            "text": "",
            "files": [
                {
                    "id": file_id,
                    "name": name,
                    "size": len(content),
                    "url_private_download": url,
                    "filetype": "python",
                }
            ],
        }
        response = self.event(event)
        assert response.status_code == 200, response.text
        return event


@contextmanager
def bolt_http_app(settings: Any, fake: FakeSlack) -> Iterator[tuple[SlackRequests, Any]]:
    """The real Bolt app (``bot.app.build_app``) served over HTTP on a free port.

    Its outbox dispatcher thread sends posts to the fake Slack server as they are queued.
    """
    from bot.app import build_app, dispatcher_of, make_http_server

    app = build_app(settings, per_channel_interval=0)
    dispatcher_of(app).interval = 0.05
    server = make_http_server(app, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/slack/events"
    try:
        with httpx.Client(timeout=30) as http:
            yield SlackRequests(url=url, fake=fake, http=http), app
    finally:
        server.shutdown()
        server.server_close()
        dispatcher_of(app).stop()


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def e2e_env(**values: str) -> dict[str, str]:
    """The environment every process of the system shares (the test, its workers, its bot)."""
    env = {
        "CIRCUITBOARD_SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "CIRCUITBOARD_VERIFY_OVERRIDES": MONTH_VERIFY,
        "CIRCUITBOARD_VERIFICATION_SEED": VERIFICATION_SEED,
        "CIRCUITBOARD_DAILY_SUBMISSION_LIMIT": "1000",
        "CIRCUITBOARD_TASK_TIME_LIMIT": "120",
        # one torch thread per process: workers share the two cores fairly
        "OMP_NUM_THREADS": "1",
    }
    env.update(values)
    return env
