"""Posts past Slack's size rules are split, not retried; cuts never fall inside a link.

Against the strict fake (which answers ``msg_blocks_too_long`` / ``invalid_blocks`` /
``msg_too_long`` as Slack does), through the outbox.
"""

from __future__ import annotations

import pytest
from slack_sdk import WebClient

from bot import outbox
from bot.views.blocks import clip, section
from storage.db import session_factory, session_scope, upgrade_database
from storage.models import OutboxMessage, OutboxStatus


@pytest.fixture
def factory(sqlite_url):
    upgrade_database(sqlite_url)
    return session_factory(sqlite_url)


@pytest.fixture
def client(fake_slack):
    fake_slack.auto_channels = False
    fake_slack.add_channel("C0PUZZLES1", "puzzles", bot_member=True)
    return WebClient(token=fake_slack.token, base_url=fake_slack.api_url)


def _drain(factory, client) -> None:
    for _ in range(10):
        outbox.dispatch_pending(session_factory=factory, client=client, per_channel_interval=0)


def _line(i: int) -> str:
    return f"*{i}.* <@U0USER{i:04d}> · <https://example.com/{'x' * 80}/{i}|write-up>"


def test_a_post_of_many_large_blocks_is_split_into_posts_slack_accepts(factory, client, fake_slack):
    blocks = [section("\n".join(_line(i * 10 + j) for j in range(10))) for i in range(12)]
    blocks += [{"type": "divider"}] * 45  # 57 blocks, ~17k characters of JSON
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s,
            key="big",
            method="chat_postMessage",
            payload={"channel": "C0PUZZLES1", "text": "Leaderboard", "blocks": blocks},
        )
    _drain(factory, client)
    with session_scope(factory) as s:
        rows = s.query(OutboxMessage).order_by(OutboxMessage.id).all()
        assert [r.idempotency_key for r in rows] == ["big", "big:part2", "big:part3"][: len(rows)]
        assert len(rows) >= 2 and all(r.status == OutboxStatus.SENT for r in rows)
    posted = [m for m in fake_slack.messages["C0PUZZLES1"]]
    assert [b for m in posted for b in m["blocks"]] == blocks  # everything, in order
    assert all(len(m["blocks"]) <= 50 for m in posted)


def test_a_long_text_only_post_is_cut_at_line_ends(factory, client, fake_slack):
    text = "\n".join(_line(i) for i in range(200))  # ~25k characters
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s,
            key="long",
            method="chat_postMessage",
            payload={"channel": "C0PUZZLES1", "text": text},
        )
    _drain(factory, client)
    posted = [m["text"] for m in fake_slack.messages["C0PUZZLES1"]]
    assert len(posted) >= 3 and "\n".join(posted) == text
    assert all(len(t) <= outbox.MESSAGE_TEXT_MAX for t in posted)


def test_what_slack_refuses_for_size_is_not_retried(factory, client, fake_slack):
    fake_slack.fail("chat.update", "msg_blocks_too_long")
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s,
            key="edit",
            method="chat_update",
            payload={"channel": "C0PUZZLES1", "ts": "1.000001", "text": "x"},
        )
    _drain(factory, client)
    assert len(fake_slack.calls_to("chat.update")) == 1
    with session_scope(factory) as s:
        assert outbox.get(session=s, key="edit").status == OutboxStatus.FAILED


def test_clip_never_cuts_inside_a_link_or_mention():
    text = "rank list: " + " ".join(_line(i) for i in range(40))
    for limit in range(100, 3000, 37):
        cut = clip(text, limit)
        assert len(cut) <= limit
        kept = cut.removesuffix("…")
        assert kept.count("<") == kept.count(">"), (limit, kept[-60:])


def test_listener_calls_wait_out_a_rate_limit(slack_app, open_round):
    slack_app.fake.rate_limit("views.open", times=1, retry_after=0)
    slack_app.command("submit")
    opened = slack_app.fake.wait_for("views.open", count=2)
    assert opened[0].args["trigger_id"] == opened[1].args["trigger_id"]
