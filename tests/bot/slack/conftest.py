"""The Bolt app in HTTP mode on a free 127.0.0.1 port, talking to the fake Slack Web API.

``slack_app.command("/puzzle", "me", user="U0USER0001")`` (and ``.event``, ``.action``, ``.view_submission``)
send requests signed with the signing secret exactly as Slack does (v0 HMAC-SHA256 of
``v0:{timestamp}:{body}``), so the real request verification runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from fakes.slack import TEAM_ID, FakeSlack

from bot.app import build_app, dispatcher_of, make_http_server
from bot.settings import Settings
from storage.db import session_factory, session_scope, upgrade_database
from storage.models import PuzzleVersion, Round, RoundStatus, utcnow

SIGNING_SECRET = "test-signing-secret"
ADMIN = "U0ADMIN001"
ROUND_CHANNEL = "C0ROUND001"
MANIFEST = Path(__file__).resolve().parents[3] / "slack-manifest.yaml"


def manifest_should_escape() -> bool:
    """The manifest's ``should_escape`` for /puzzle: how Slack sends the typed text."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    (puzzle,) = manifest["features"]["slash_commands"]
    return bool(puzzle["should_escape"])


def sign(body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class SlackApp:
    url: str
    fake: FakeSlack
    factory: Any
    app: Any
    http: httpx.Client

    def post(
        self, body: str, content_type: str, *, headers: dict | None = None, **sign_kw: Any
    ) -> httpx.Response:
        all_headers = {"Content-Type": content_type, **sign(body, **sign_kw), **(headers or {})}
        return self.http.post(self.url, content=body.encode(), headers=all_headers)

    def command(self, text: str = "", *, user: str = "U0USER0001", **kw: Any) -> httpx.Response:
        """``/puzzle text`` as typed; sent as Slack sends it under the manifest's should_escape."""
        text = self.fake.slash_text(text, should_escape=manifest_should_escape())
        body = urlencode(
            {
                "token": "legacy",
                "team_id": TEAM_ID,
                "channel_id": "C0GENERAL1",
                "user_id": user,
                "command": "/puzzle",
                "text": text,
                "response_url": self.fake.response_url(uuid.uuid4().hex[:8]),
                "trigger_id": self.fake.new_trigger(),
            }
        )
        return self.post(body, "application/x-www-form-urlencoded", **kw)

    def _interactive(self, payload: dict, **kw: Any) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)})
        return self.post(body, "application/x-www-form-urlencoded", **kw)

    def action(self, action_id: str, *, user: str = "U0USER0001", **kw: Any) -> httpx.Response:
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM_ID},
            "user": {"id": user},
            "api_app_id": "A0FAKE",
            "trigger_id": self.fake.new_trigger(),
            "container": {"type": "view", "view_id": "V1"},
            "view": {"id": "V1", "type": "home"},
            "actions": [{"action_id": action_id, "block_id": "b", "type": "button"}],
        }
        return self._interactive(payload, **kw)

    def view_submission(
        self,
        callback_id: str,
        values: dict,
        *,
        user: str = "U0USER0001",
        metadata: str = "",
        **kw: Any,
    ) -> httpx.Response:
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM_ID},
            "user": {"id": user},
            "api_app_id": "A0FAKE",
            "trigger_id": self.fake.new_trigger(),
            "view": {
                "id": f"V{uuid.uuid4().hex[:8]}",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": metadata,
                "state": {"values": values},
            },
        }
        return self._interactive(payload, **kw)

    def event(
        self, event: dict, *, event_id: str | None = None, retry: int | None = None, **kw: Any
    ) -> httpx.Response:
        body = json.dumps(
            {
                "token": "legacy",
                "team_id": TEAM_ID,
                "api_app_id": "A0FAKE",
                "type": "event_callback",
                "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}",
                "event_time": int(time.time()),
                "event": event,
            }
        )
        headers = {}
        if retry is not None:
            headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return self.post(body, "application/json", headers=headers, **kw)

    def flush(self) -> None:
        """Send everything the outbox holds now (the background dispatcher does this too)."""
        dispatcher_of(self.app).run_once()


@pytest.fixture
def slack_settings(fake_slack: FakeSlack, sqlite_url: str) -> Settings:
    upgrade_database(sqlite_url)
    return Settings(
        database_url=sqlite_url,
        slack_bot_token=fake_slack.token,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.api_url,
        admins=[ADMIN],
        verification_seed="circuitboard-slack-tests",  # one held-out set: verdicts reproducible
    )


@pytest.fixture
def slack_app(slack_settings: Settings, fake_slack: FakeSlack) -> Iterator[SlackApp]:
    # As strict as Slack: channels exist only once declared, the bot posts in the round's channel
    # because an admin invited it (README, Slack setup step 4), triggers expire after 3 s.
    fake_slack.auto_channels = False
    fake_slack.strict_triggers = True
    fake_slack.add_channel("C0GENERAL1", "general")
    fake_slack.add_channel(ROUND_CHANNEL, "puzzle-of-the-month")
    fake_slack.invite_bot(ROUND_CHANNEL)
    factory = session_factory(slack_settings.db_url)
    app = build_app(slack_settings, session_factory=factory, per_channel_interval=0)
    dispatcher_of(app).interval = 0.05
    server = make_http_server(app, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    with httpx.Client(timeout=10) as http:
        yield SlackApp(
            url=f"http://127.0.0.1:{port}/slack/events",
            fake=fake_slack,
            factory=factory,
            app=app,
            http=http,
        )
    server.shutdown()
    server.server_close()
    dispatcher_of(app).stop()


@pytest.fixture
def open_round(slack_app: SlackApp) -> int:
    """An open round of the catalog's palindromes puzzle in ``ROUND_CHANNEL``."""
    now = utcnow()
    with session_scope(slack_app.factory) as session:
        version = PuzzleVersion(
            slug="palindromes", version=1, weights_sha256="0" * 64, title="Palindromes"
        )
        round_ = Round(
            puzzle_version=version,
            channel_id=ROUND_CHANNEL,
            opens_at=now - timedelta(days=1),
            closes_at=now + timedelta(days=10),
            status=RoundStatus.OPEN,
        )
        session.add(round_)
        session.flush()
        return round_.id
