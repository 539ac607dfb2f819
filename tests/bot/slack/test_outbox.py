"""The outbox against the fake Slack server: once per key, threads, rate limits, backoff."""

from __future__ import annotations

from datetime import timedelta

import pytest
from slack_sdk import WebClient

from bot import outbox
from storage.db import session_factory, session_scope, upgrade_database
from storage.models import OutboxMessage, OutboxStatus, utcnow


@pytest.fixture
def factory(sqlite_url):
    upgrade_database(sqlite_url)
    return session_factory(sqlite_url)


@pytest.fixture
def client(fake_slack):
    return WebClient(token=fake_slack.token, base_url=fake_slack.api_url)


def _drain(factory, client, *, rounds: int = 10) -> int:
    total = 0
    for _ in range(rounds):
        total += outbox.dispatch_pending(
            session_factory=factory, client=client, per_channel_interval=0
        )
    return total


def test_enqueue_is_idempotent_and_sends_once(factory, client, fake_slack):
    with session_scope(factory) as s:
        a = outbox.enqueue(
            session=s, key="k1", method="chat_postMessage", payload={"channel": "C1", "text": "hi"}
        )
        b = outbox.enqueue(
            session=s,
            key="k1",
            method="chat_postMessage",
            payload={"channel": "C1", "text": "other"},
        )
        assert a is b
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s, key="k1", method="chat_postMessage", payload={"channel": "C1", "text": "x"}
        )
    assert _drain(factory, client) == 1
    calls = fake_slack.calls_to("chat.postMessage")
    assert [c.args["text"] for c in calls] == ["hi"]
    with session_scope(factory) as s:
        row = outbox.get(session=s, key="k1")
        assert row.status == OutboxStatus.SENT and row.slack_ts and row.slack_channel == "C1"


def test_reply_waits_for_parent_and_update_targets_it(factory, client, fake_slack):
    with session_scope(factory) as s:
        # The child is queued first but must wait for its parent's ts.
        outbox.enqueue(
            session=s,
            key="child",
            method="chat_postMessage",
            payload={"channel": "U9", "text": "reply"},
            thread_key="parent",
        )
        outbox.enqueue(
            session=s,
            key="parent",
            method="chat_postMessage",
            payload={"channel": "U9", "text": "parent"},
        )
        outbox.enqueue(
            session=s,
            key="edit",
            method="chat_update",
            payload={"channel": "U9", "text": "edited"},
            thread_key="parent",
        )
    _drain(factory, client)
    posts = fake_slack.calls_to("chat.postMessage")
    assert [c.args["text"] for c in posts] == ["parent", "reply"]
    with session_scope(factory) as s:
        parent = outbox.get(session=s, key="parent")
    assert posts[1].args["thread_ts"] == parent.slack_ts
    (upd,) = fake_slack.calls_to("chat.update")
    assert upd.args["ts"] == parent.slack_ts and upd.args["channel"] == "D9"


def test_ratelimited_waits_retry_after_without_counting_an_attempt(factory, client, fake_slack):
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=2)
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s, key="rl", method="chat_postMessage", payload={"channel": "C2", "text": "x"}
        )
    assert (
        outbox.dispatch_pending(session_factory=factory, client=client, per_channel_interval=0) == 0
    )
    with session_scope(factory) as s:
        row = outbox.get(session=s, key="rl")
        assert row.status == OutboxStatus.PENDING and row.attempts == 0
        assert row.next_attempt_at >= utcnow() + timedelta(seconds=1)
        assert "ratelimited" in row.last_error
    later = utcnow() + timedelta(seconds=3)
    outbox._PACER.blocked_until.clear()  # the in-process clock of the method block
    assert (
        outbox.dispatch_pending(
            session_factory=factory, client=client, now=later, per_channel_interval=0
        )
        == 1
    )
    assert len(fake_slack.calls_to("chat.postMessage")) == 2


def test_errors_back_off_then_give_up(factory, client, fake_slack):
    fake_slack.fail("chat.postMessage", "internal_error", times=100)
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s, key="bad", method="chat_postMessage", payload={"channel": "C3", "text": "x"}
        )
    now = utcnow()
    for _ in range(outbox.MAX_ATTEMPTS + 2):
        outbox.dispatch_pending(
            session_factory=factory, client=client, now=now, per_channel_interval=0
        )
        now += timedelta(seconds=outbox.BACKOFF_MAX_S + 1)
    with session_scope(factory) as s:
        row = outbox.get(session=s, key="bad")
        assert row.status == OutboxStatus.FAILED and row.attempts == outbox.MAX_ATTEMPTS
    assert len(fake_slack.calls_to("chat.postMessage")) == outbox.MAX_ATTEMPTS


def test_fatal_error_fails_at_once(factory, client, fake_slack):
    fake_slack.fail("chat.postMessage", "channel_not_found")
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s, key="gone", method="chat_postMessage", payload={"channel": "C4", "text": "x"}
        )
    _drain(factory, client)
    with session_scope(factory) as s:
        assert outbox.get(session=s, key="gone").status == OutboxStatus.FAILED


def test_one_post_per_second_per_channel(factory, client, fake_slack):
    with session_scope(factory) as s:
        for i in range(3):
            outbox.enqueue(
                session=s,
                key=f"p{i}",
                method="chat_postMessage",
                payload={"channel": "C5", "text": str(i)},
            )
        outbox.enqueue(
            session=s,
            key="other",
            method="chat_postMessage",
            payload={"channel": "C6", "text": "o"},
        )
    ticks = iter([100.0, 100.0, 100.1, 100.1, 100.2, 100.2, 101.5, 101.5, 101.6, 101.6])
    sent = outbox.dispatch_pending(
        session_factory=factory, client=client, clock=lambda: next(ticks)
    )
    assert sent == 2  # one per channel
    sent = outbox.dispatch_pending(
        session_factory=factory, client=client, clock=lambda: next(ticks)
    )
    assert sent == 1
    texts = [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")]
    assert texts == ["0", "o", "1"]


def test_files_upload_v2_through_the_fake(factory, client, fake_slack):
    import base64

    with session_scope(factory) as s:
        outbox.enqueue(
            session=s,
            key="plot",
            method="files_upload_v2",
            payload={
                "channel": "C7",
                "filename": "p.png",
                "title": "plot",
                "content_b64": base64.b64encode(b"PNGDATA").decode(),
            },
        )
    assert _drain(factory, client) == 1
    assert list(fake_slack.uploads.values()) == [b"PNGDATA"]
    (complete,) = fake_slack.calls_to("files.completeUploadExternal")
    assert complete.args["channel_id"] == "C7"
    with session_scope(factory) as s:
        assert s.query(OutboxMessage).filter_by(status=OutboxStatus.SENT).count() == 1
