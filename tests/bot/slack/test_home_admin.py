"""App Home for users and admins; admin actions checked server-side and audited; no Slack, no crash."""

from __future__ import annotations

import socket
import threading

import httpx

from bot.app import build_app, dispatcher_of, make_http_server
from bot.settings import Settings
from storage.db import session_factory, session_scope
from storage.models import Admin, AuditLog, Hint

ADMIN = "U0ADMIN001"


def _home(slack_app, user: str):
    slack_app.event({"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"})
    calls = slack_app.fake.wait_for("views.publish", lambda c: c.args["user_id"] == user)
    return calls[-1].args["view"]


def _action_ids(view) -> set[str]:
    return {
        e.get("action_id")
        for b in view["blocks"]
        for e in b.get("elements", [])
        if isinstance(e, dict)
    }


def test_home_for_user_and_admin(slack_app, open_round):
    user_view = _home(slack_app, "U0USER0001")
    text = str(user_view["blocks"])
    assert user_view["type"] == "home"
    assert "Palindromes" in text and "Your submissions" in text and "Leaderboard" in text
    assert "admin_schedule_hint" not in _action_ids(user_view)
    admin_view = _home(slack_app, ADMIN)
    assert {
        "admin_schedule_hint",
        "admin_round",
        "admin_award_credit",
        "admin_reverify",
    } <= _action_ids(admin_view)


def _audit(slack_app):
    with session_scope(slack_app.factory) as session:
        return [
            (a.actor_id, a.action, a.allowed) for a in session.query(AuditLog).order_by(AuditLog.id)
        ]


def test_non_admin_button_and_modal_are_refused_and_audited(slack_app, open_round):
    assert slack_app.action("admin_schedule_hint", user="U0USER0001").status_code == 200
    values = {"user": {"value": {"type": "users_select", "selected_user": "U0USER0001"}}}
    response = slack_app.view_submission("admin_grant", values, user="U0USER0001")
    assert response.status_code == 200
    slack_app.fake.wait_for(
        "chat.postMessage", lambda c: "Only puzzle admins" in c.args["text"], count=2
    )
    assert slack_app.fake.calls_to("views.open") == []
    assert _audit(slack_app) == [
        ("U0USER0001", "slack.admin_schedule_hint", False),
        ("U0USER0001", "slack.admin_grant", False),
    ]
    with session_scope(slack_app.factory) as session:
        assert session.get(Admin, "U0USER0001") is None


def test_admin_opens_panel_modal_and_schedules_a_hint(slack_app, open_round):
    import time

    slack_app.action("admin_schedule_hint", user=ADMIN)
    (opened,) = slack_app.fake.wait_for("views.open")
    view = opened.args["view"]
    assert view["callback_id"] == "hint_schedule"

    def submit(when: int):
        values = {
            "release_at": {"value": {"type": "datetimepicker", "selected_date_time": when}},
            "text": {"value": {"type": "plain_text_input", "value": "Look at layer 0."}},
        }
        return slack_app.view_submission(
            "hint_schedule", values, user=ADMIN, metadata=view["private_metadata"]
        )

    refused = submit(int(time.time()) - 86400)  # in the past: the form says why
    assert refused.json()["response_action"] == "errors"
    assert submit(int(time.time()) + 3 * 86400).status_code == 200
    (reply,) = slack_app.fake.wait_for("chat.postMessage", lambda c: c.args["channel"] == ADMIN)
    assert "Scheduled" in reply.args["text"], reply.args["text"]
    with session_scope(slack_app.factory) as session:
        assert session.query(Hint).filter_by(text="Look at layer 0.").count() == 1
    assert [a[2] for a in _audit(slack_app)] == [True, True, True]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_http_app_serves_when_slack_is_unreachable(sqlite_url, fake_slack, caplog):
    from storage.db import upgrade_database

    upgrade_database(sqlite_url)
    settings = Settings(
        database_url=sqlite_url,
        slack_bot_token="xoxb-unreachable",
        slack_signing_secret="s3cret",
        slack_api_url=f"http://127.0.0.1:{_closed_port()}/api/",
    )
    app = build_app(settings, session_factory=session_factory(sqlite_url))
    assert "auth.test failed" in caplog.text
    server = make_http_server(app, host="127.0.0.1", port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert httpx.get(base + "/healthz").text == "ok"
        from urllib.parse import urlencode

        body = urlencode(
            {
                "command": "/puzzle",
                "text": "help",
                "user_id": "U0USER0001",
                "channel_id": "C1",
                "team_id": "T1",
                "response_url": fake_slack.response_url(),
                "trigger_id": "t",
            }
        )
        import hashlib
        import hmac
        import time

        ts = str(int(time.time()))
        sig = "v0=" + hmac.new(b"s3cret", f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
        response = httpx.post(
            base + "/slack/events",
            content=body,
            headers={
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": sig,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert response.status_code == 200
        (answer,) = fake_slack.wait_for("response_url")
        assert "/puzzle submit" in str(answer.args["blocks"])
    finally:
        server.shutdown()
        server.server_close()
        dispatcher_of(app).stop()


def test_socket_mode_app_needs_no_signing_secret(sqlite_url, fake_slack):
    from storage.db import upgrade_database

    upgrade_database(sqlite_url)
    settings = Settings(
        database_url=sqlite_url,
        slack_bot_token=fake_slack.token,
        slack_app_token="xapp-1",
        slack_api_url=fake_slack.api_url,
    )
    app = build_app(settings, session_factory=session_factory(sqlite_url), start_dispatcher=False)
    assert app.client.base_url == fake_slack.api_url
    assert fake_slack.calls_to("auth.test")  # identity checked once at start
