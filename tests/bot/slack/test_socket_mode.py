"""Socket Mode (the README's default) end to end against a local Socket Mode endpoint.

The bot's own ``SocketModeHandler`` (slack_sdk's built-in client, as ``circuitboard bot`` runs it)
asks the fake for a URL with its app-level token (``apps.connections.open``), gets ``hello``, and
answers a slash command, an event and a view submission, each acknowledged by envelope id. The
socket is then dropped mid-session: the client reconnects, what Slack held meanwhile and what was
not acknowledged is delivered again, and each thing is handled exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from fakes.slack import TEAM_ID, FakeSlack
from fakes.socket_mode import SocketModeServer

from bot.app import build_app, dispatcher_of, socket_mode_handler
from bot.settings import Settings
from storage.db import session_factory, session_scope
from storage.models import Submission

USER = "U0ALICE001"
DM = "D0ALICE001"


@pytest.fixture
def socket_server(fake_slack: FakeSlack) -> Iterator[SocketModeServer]:
    server = SocketModeServer(fake_slack).start()
    yield server
    server.stop()


@pytest.fixture
def socket_bot(slack_settings: Settings, fake_slack: FakeSlack, socket_server: SocketModeServer):
    settings = slack_settings.model_copy(
        update={"slack_signing_secret": None, "slack_app_token": fake_slack.app_token}
    )
    factory = session_factory(settings.db_url)
    app = build_app(settings, session_factory=factory, per_channel_interval=0)
    dispatcher_of(app).interval = 0.05
    # As `circuitboard bot` builds it; a short ping interval only makes the client notice a
    # dropped socket sooner (the test waits on conditions, never on time).
    handler = socket_mode_handler(app, fake_slack.app_token, ping_interval=0.5)
    handler.connect()
    yield app, factory
    handler.close()
    dispatcher_of(app).stop()


def _event(text: str) -> dict:
    return {
        "token": "legacy",
        "team_id": TEAM_ID,
        "api_app_id": "A0FAKEAPP1",
        "type": "event_callback",
        "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "event": {
            "type": "message",
            "channel_type": "im",
            "channel": DM,
            "user": USER,
            "text": text,
            "ts": f"{time.time():.6f}",
        },
    }


def test_socket_mode_delivers_acks_and_survives_a_dropped_socket(
    socket_bot, socket_server, fake_slack, open_round
):
    app, factory = socket_bot
    socket_server.wait_connections(1)
    (opened,) = fake_slack.calls_to("apps.connections.open")
    assert opened.token == fake_slack.app_token  # the xapp- token, not the bot token

    # A slash command: acked by envelope id; the answer goes to its response_url.
    command = socket_server.deliver(
        "slash_commands",
        {
            "token": "legacy",
            "team_id": TEAM_ID,
            "channel_id": "C0GENERAL1",
            "user_id": USER,
            "command": "/puzzle",
            "text": "help",
            "response_url": fake_slack.response_url("sm1"),
            "trigger_id": fake_slack.new_trigger(),
        },
    )
    assert socket_server.wait_ack(command)["envelope_id"] == command
    (answer,) = fake_slack.wait_for("response_url")
    assert "/puzzle submit" in str(answer.args["blocks"])

    # An event: a DM to the bot gets the help text, once.
    first = _event("hi")
    socket_server.wait_ack(socket_server.deliver("events_api", first))
    fake_slack.wait_for("chat.postMessage", lambda c: c.args["channel"] == DM)

    # Slack refreshes the connection (a disconnect message): the app reconnects at once.
    socket_server.refresh()
    assert len(fake_slack.calls_to("apps.connections.open")) == 2

    # The socket drops; Slack holds the next event and delivers it on the new connection.
    socket_server.drop()
    held = socket_server.deliver("events_api", _event("are you there?"))
    socket_server.wait_connections(3)
    socket_server.wait_ack(held)

    # Dropped right after an event was written: whether or not the ack got through, the event is
    # handled once (re-delivered with retry_attempt if unacknowledged, de-duplicated by event_id).
    racing = _event("still there?")
    envelope = socket_server.deliver("events_api", racing, then_drop=True)
    socket_server.wait_connections(4)
    socket_server.wait_ack(envelope)

    # A view submission after the reconnects: the submit modal's file becomes one submission.
    url = fake_slack.add_file(
        "F0SOLUTION1", "mine.py", b"def predict(tokens):\n    return tokens\n"
    )
    values = {
        "solution_file": {
            "file": {
                "type": "file_input",
                "files": [
                    {
                        "id": "F0SOLUTION1",
                        "name": "mine.py",
                        "size": 40,
                        "url_private_download": url,
                    }
                ],
            }
        },
        "writeup": {"url": {"type": "url_text_input", "value": None}},
    }
    view = socket_server.deliver(
        "interactive",
        {
            "type": "view_submission",
            "team": {"id": TEAM_ID},
            "user": {"id": USER},
            "api_app_id": "A0FAKEAPP1",
            "trigger_id": fake_slack.new_trigger(),
            "view": {
                "id": "V0SUBMIT001",
                "type": "modal",
                "callback_id": "submit_solution",
                "private_metadata": str(open_round),
                "state": {"values": values},
            },
        },
    )
    ack = socket_server.wait_ack(view)
    assert "errors" not in str(ack.get("payload") or {})
    fake_slack.wait_for("chat.postMessage", lambda c: "Submission #" in str(c.args.get("text")))
    with session_scope(factory) as session:
        (submission,) = session.query(Submission).all()
        assert submission.user_id == USER and submission.filename == "mine.py"

    # Three DM events (one re-delivered if its ack was lost), three help replies: none lost, none
    # doubled by the re-delivery (the outbox key is the event id).
    def is_help(call) -> bool:
        return call.args["channel"] == DM and "Submission" not in str(call.args.get("text"))

    fake_slack.wait_for("chat.postMessage", is_help, count=3)
    dispatcher_of(app).run_once()  # anything still queued is sent now
    assert len([c for c in fake_slack.calls_to("chat.postMessage") if is_help(c)]) == 3
