"""`/puzzle` over signed HTTP requests: fast ack, the right answer, signatures enforced."""

from __future__ import annotations

import time

from storage.db import session_scope
from storage.models import AuditLog

ADMIN = "U0ADMIN001"  # tests/bot/slack/conftest.py puts it in settings.admins


def _answer(slack_app, count: int = 1):
    return slack_app.fake.wait_for("response_url", count=count)[-1].args


def test_puzzle_without_round_acks_fast_and_says_so(slack_app):
    start = time.monotonic()
    response = slack_app.command("")
    assert response.status_code == 200
    assert time.monotonic() - start < 3
    answer = _answer(slack_app)
    assert answer["response_type"] == "ephemeral"
    assert (
        "no open round" in answer["text"].lower()
        or "no open round" in str(answer["blocks"]).lower()
    )


def test_puzzle_shows_current_puzzle_and_kit(slack_app, open_round):
    slack_app.command("")
    answer = _answer(slack_app)
    blocks = str(answer["blocks"])
    assert "Palindromes" in answer["text"]
    assert "circuitboard puzzles kit palindromes" in blocks


def test_unknown_subcommand_gets_help(slack_app):
    slack_app.command("frobnicate")
    answer = _answer(slack_app)
    assert "frobnicate" in str(answer["blocks"])
    assert "/puzzle submit" in str(answer["blocks"])


def test_help_shows_admin_section_only_to_admins(slack_app):
    slack_app.command("help", user="U0USER0001")
    assert "Admin" not in str(_answer(slack_app)["blocks"])
    slack_app.command("help", user=ADMIN)
    assert "/puzzle admin" in str(_answer(slack_app, 2)["blocks"])


def test_submit_opens_modal_with_file_input(slack_app, open_round):
    slack_app.command("submit")
    (call,) = slack_app.fake.wait_for("views.open")
    view = call.args["view"]
    assert view["callback_id"] == "submit_solution"
    assert any(b.get("element", {}).get("type") == "file_input" for b in view["blocks"])


def test_forged_and_stale_signatures_are_refused(slack_app):
    assert slack_app.command("help", secret="wrong-secret").status_code == 401
    stale = int(time.time()) - 10 * 60
    assert slack_app.command("help", timestamp=stale).status_code == 401
    assert slack_app.fake.calls_to("response_url") == []


def test_non_admin_admin_command_is_refused_and_audited(slack_app):
    slack_app.command("admin grant <@U0USER0002>", user="U0USER0001")
    assert "Only puzzle admins" in _answer(slack_app)["text"]
    slack_app.command("admin grant <@U0USER0002>", user=ADMIN)
    assert "now an admin" in _answer(slack_app, 2)["text"]
    with session_scope(slack_app.factory) as session:
        rows = [
            (a.actor_id, a.action, a.allowed) for a in session.query(AuditLog).order_by(AuditLog.id)
        ]
    assert rows == [("U0USER0001", "admin.grant", False), (ADMIN, "admin.grant", True)]
    slack_app.command("help", user="U0USER0002")
    assert "/puzzle admin" in str(_answer(slack_app, 3)["blocks"])
