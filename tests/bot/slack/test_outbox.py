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
    outbox.dispatch._PACER.blocked_until.clear()  # the in-process clock of the method block
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


def test_edits_are_not_held_behind_a_post_in_the_same_channel(factory, client, fake_slack):
    """Slack's one-per-second guidance is for adding messages: a status edit goes at once."""
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s, key="post", method="chat_postMessage", payload={"channel": "C8", "text": "a"}
        )
        outbox.enqueue(
            session=s,
            key="edit",
            method="chat_update",
            payload={"channel": "C8", "text": "b"},
            thread_key="post",
        )
        outbox.enqueue(
            session=s,
            key="post2",
            method="chat_postMessage",
            payload={"channel": "C8", "text": "c"},
        )
    held: set[str] = set()
    sent = outbox.dispatch_pending(
        session_factory=factory, client=client, clock=lambda: 500.0, held_channels=held
    )
    assert sent == 2  # the post and its edit; the second post waits for the channel
    assert [c.args["text"] for c in fake_slack.calls_to("chat.update")] == ["b"]
    assert held == {"C8"}
    left = outbox.seconds_until_free(held, clock=lambda: 500.25)
    assert left == pytest.approx(outbox.PER_CHANNEL_INTERVAL_S - 0.25)


def test_a_woken_dispatcher_comes_back_when_the_channel_is_free(factory, client, fake_slack):
    """Not after its (here hour-long) interval: a paced post goes as soon as it may."""
    dispatcher = outbox.Dispatcher(
        session_factory=factory, client=client, interval=3600, per_channel_interval=0.2
    ).start()
    try:
        with session_scope(factory) as s:
            for i in range(3):
                outbox.enqueue(
                    session=s,
                    key=f"burst{i}",
                    method="chat_postMessage",
                    payload={"channel": "C9", "text": str(i)},
                )
        dispatcher.wake()
        calls = fake_slack.wait_for(
            "chat.postMessage", lambda c: c.args["channel"] == "C9", count=3, timeout=60
        )
        assert [c.args["text"] for c in calls] == ["0", "1", "2"]
        assert all(b.at - a.at >= 0.19 for a, b in zip(calls, calls[1:], strict=False))
    finally:
        dispatcher.stop()


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


# --- exactly once across a crash between Slack's answer and recording it ---------------------


class _ProcessDeath:
    """While armed, marking any row sent fails, as if the process died right after Slack's answer.

    A real seam: a SQLite trigger makes the dispatcher's recording transaction abort, so the row
    stays claimed (attempts 1) and pending, exactly the state a kill -9 at that moment leaves.
    """

    def __init__(self, engine) -> None:
        self.engine = engine

    def arm(self) -> None:
        from sqlalchemy import text

        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TRIGGER process_dies BEFORE UPDATE ON outbox_messages "
                    "WHEN NEW.status = 'sent' BEGIN SELECT RAISE(ABORT, 'process died'); END"
                )
            )

    def disarm(self) -> None:
        from sqlalchemy import text

        with self.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER IF EXISTS process_dies"))


@pytest.fixture
def death(factory):
    return _ProcessDeath(factory.kw["bind"])


def _send_and_die(factory, client, death) -> None:
    from sqlalchemy.exc import DBAPIError

    death.arm()
    with pytest.raises(DBAPIError, match="process died"):
        outbox.dispatch_pending(session_factory=factory, client=client, per_channel_interval=0)
    death.disarm()  # a new process starts; the dead one's claim runs out
    with session_scope(factory) as s:
        (row,) = s.query(OutboxMessage).filter_by(status=OutboxStatus.PENDING).all()
        assert row.attempts == 1 and row.slack_ts is None


def _after_claim() -> object:
    return utcnow() + timedelta(seconds=outbox.CLAIM_S + 1)


def test_post_accepted_before_a_crash_is_recorded_not_posted_again(
    factory, client, fake_slack, death
):
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s, key="once", method="chat_postMessage", payload={"channel": "C8", "text": "x"}
        )
    _send_and_die(factory, client, death)
    (first,) = fake_slack.calls_to("chat.postMessage")
    assert first.args["metadata"] == {
        "event_type": "circuitboard_outbox",
        "event_payload": {"key": "once"},
    }
    # Still claimed: nobody touches it yet.
    assert outbox.dispatch_pending(session_factory=factory, client=client) == 0
    sent = outbox.dispatch_pending(
        session_factory=factory, client=client, now=_after_claim(), per_channel_interval=0
    )
    assert sent == 1
    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # read back, not re-sent
    (lookup,) = fake_slack.calls_to("conversations.history")
    assert lookup.args["channel"] == "C8" and lookup.args["include_all_metadata"] in ("1", "true")
    with session_scope(factory) as s:
        row = outbox.get(session=s, key="once")
        assert row.status == OutboxStatus.SENT
        assert (row.slack_channel, row.slack_ts) == ("C8", fake_slack.messages["C8"][0]["ts"])


def test_dm_thread_reply_accepted_before_a_crash_is_found_in_the_thread(
    factory, client, fake_slack, death
):
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s,
            key="top",
            method="chat_postMessage",
            payload={"channel": "U0USER0007", "text": "p"},
        )
    assert _drain(factory, client, rounds=1) == 1
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s,
            key="reply",
            method="chat_postMessage",
            payload={"channel": "U0USER0007", "text": "r"},
            thread_key="top",
        )
    _send_and_die(factory, client, death)
    assert (
        outbox.dispatch_pending(
            session_factory=factory, client=client, now=_after_claim(), per_channel_interval=0
        )
        == 1
    )
    assert [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")] == ["p", "r"]
    # The reply goes where its parent landed (the DM), so the read-back needs no conversations.open.
    assert [c.args["channel"] for c in fake_slack.calls_to("chat.postMessage")] == [
        "U0USER0007",
        "D0USER0007",
    ]
    assert fake_slack.calls_to("conversations.open") == []
    (lookup,) = fake_slack.calls_to("conversations.replies")
    with session_scope(factory) as s:
        parent, reply = outbox.get(session=s, key="top"), outbox.get(session=s, key="reply")
        assert lookup.args["channel"] == "D0USER0007" and lookup.args["ts"] == parent.slack_ts
        assert reply.status == OutboxStatus.SENT and reply.slack_channel == "D0USER0007"
        assert reply.slack_ts == fake_slack.messages["D0USER0007"][1]["ts"] != parent.slack_ts


def test_plot_uploaded_before_a_crash_is_not_uploaded_again(factory, client, fake_slack, death):
    import base64

    with session_scope(factory) as s:
        outbox.enqueue(
            session=s,
            key="plot",
            method="files_upload_v2",
            payload={
                "channel": "C9",
                "filename": "p-1.png",
                "title": "plot",
                "content_b64": base64.b64encode(b"PNG").decode(),
            },
        )
    _send_and_die(factory, client, death)
    assert (
        outbox.dispatch_pending(
            session_factory=factory, client=client, now=_after_claim(), per_channel_interval=0
        )
        == 1
    )
    assert len(fake_slack.calls_to("files.completeUploadExternal")) == 1
    assert len(fake_slack.calls_to("files.getUploadURLExternal")) == 1


def test_retry_after_a_post_that_never_reached_slack_posts_it_once(factory, client, fake_slack):
    fake_slack.fail("chat.postMessage", "internal_error")
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s,
            key="late",
            method="chat_postMessage",
            payload={"channel": "C10", "text": "x"},
        )
    assert _drain(factory, client, rounds=1) == 0
    later = utcnow() + timedelta(seconds=outbox.BACKOFF_MAX_S + 1)
    assert (
        outbox.dispatch_pending(
            session_factory=factory, client=client, now=later, per_channel_interval=0
        )
        == 1
    )
    assert len(fake_slack.calls_to("conversations.history")) == 1  # looked, found nothing
    assert len(fake_slack.messages["C10"]) == 1
    with session_scope(factory) as s:
        assert outbox.get(session=s, key="late").status == OutboxStatus.SENT


def test_pin_already_pinned_counts_as_done(factory, client, fake_slack):
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s,
            key="board",
            method="chat_postMessage",
            payload={"channel": "C11", "text": "b"},
        )
        outbox.enqueue(
            session=s,
            key="board:pin",
            method="pins_add",
            payload={"channel": "C11"},
            thread_key="board",
        )
    assert _drain(factory, client, rounds=2) == 2
    with session_scope(factory) as s:
        ts = outbox.get(session=s, key="board").slack_ts
        outbox.enqueue(
            session=s,
            key="board:pin:again",
            method="pins_add",
            payload={"channel": "C11"},
            thread_key="board",
        )
    assert _drain(factory, client, rounds=1) == 1
    assert len(fake_slack.calls_to("pins.add")) == 2 and fake_slack.pins == {("C11", ts)}
    with session_scope(factory) as s:
        assert outbox.get(session=s, key="board:pin:again").status == OutboxStatus.SENT


def test_plot_for_a_user_without_a_dm_channel_is_shared_in_their_dm(factory, client, fake_slack):
    """A `/puzzle submit` submission has no DM channel: its status goes to the user id (which
    chat.postMessage accepts) and the plot, threaded under it, must go to the DM, since
    files.completeUploadExternal refuses a user id (issue 16, break 1)."""
    import base64

    from slack_sdk.errors import SlackApiError

    with pytest.raises(SlackApiError, match="invalid_arguments"):  # Slack's rule, in the fake
        client.files_upload_v2(channel="U0ALICE001", content=b"x", filename="x.png")
    fake_slack.reset()
    with session_scope(factory) as s:
        outbox.enqueue(
            session=s,
            key="status",
            method="chat_postMessage",
            payload={"channel": "U0ALICE001", "text": "Submission #1: verified"},
        )
        outbox.enqueue(
            session=s,
            key="plot",
            method="files_upload_v2",
            payload={
                "channel": "U0ALICE001",
                "filename": "submission-1-attempt-1.png",
                "title": "plot",
                "content_b64": base64.b64encode(b"PNGDATA").decode(),
            },
            thread_key="status",
        )
        outbox.enqueue(  # a lone plot (no parent) finds the DM with conversations.open
            session=s,
            key="plot2",
            method="files_upload_v2",
            payload={
                "channel": "U0BOB00001",
                "filename": "p2.png",
                "content_b64": base64.b64encode(b"PNG2").decode(),
            },
        )
    assert _drain(factory, client) == 3
    completes = fake_slack.calls_to("files.completeUploadExternal")
    assert sorted(c.args["channel_id"] for c in completes) == ["D0ALICE001", "D0BOB00001"]
    shared = [m for m in fake_slack.messages["D0ALICE001"] if m.get("files")]
    (status,) = [m for m in fake_slack.messages["D0ALICE001"] if not m.get("files")]
    assert [m.get("thread_ts") for m in shared] == [status["ts"]]
