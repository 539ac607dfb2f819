"""The pinned leaderboard message: posted once, pinned, edited in place, spoiler-free until close."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from support.leaderboards import World, drain_posts, shown_text

from bot.posts import leaderboards as leaderboard_posts
from bot.services import leaderboards
from bot.views.leaderboard import build_round_leaderboard_message
from storage.models import OutboxMessage, OutboxStatus, RoundStatus


@pytest.fixture
def world(sqlite_url):
    w = World(sqlite_url)
    yield w
    w.close()


def test_pinned_message_is_posted_once_then_edited_and_spoiler_free(world, fake_slack):
    r = world.round(channel="CPUZZLE")
    world.now = r.opens_at + timedelta(days=1)
    first = world.submit(
        r, "UALICE", verdicts=[(2, True, 0.875, 0.5)], writeup_url="https://secret.example/w"
    )
    world.session.commit()

    post = leaderboard_posts.refresh_pinned_leaderboard(
        session=world.session, round_id=r.id, now=world.now
    )
    assert post.idempotency_key == f"round:{r.id}:leaderboard"
    assert post.method == "chat_postMessage" and post.payload["channel"] == "CPUZZLE"
    # Nothing changed: a second refresh queues nothing.
    assert (
        leaderboard_posts.refresh_pinned_leaderboard(
            session=world.session, round_id=r.id, now=world.now
        )
        is None
    )
    # A verdict before the post went out: the pending post is rewritten, not duplicated.
    world.submit(r, "UBOB", verdicts=[(1, False, 0.99, 0.99)])
    world.session.commit()
    again = leaderboard_posts.refresh_pinned_leaderboard(
        session=world.session, round_id=r.id, now=world.now
    )
    assert again.id == post.id and "UBOB" in json.dumps(again.payload["blocks"])
    world.session.commit()

    drain_posts(world, fake_slack)
    posted = fake_slack.calls_to("chat.postMessage")
    assert len(posted) == 1
    # The pin was queued together with the post; the outbox gave it the post's ts.
    (pin,) = fake_slack.calls_to("pins.add")
    assert pin.args["channel"] == "CPUZZLE" and pin.args["timestamp"]
    shown = shown_text(posted[0])
    assert "UALICE" in shown and "✅ 2/2" in shown and "◐ 1/2" in shown
    for secret in ("0.875", "0.5", "secret.example", "0.99"):
        assert secret not in shown  # ranks and pass marks only while the round is open

    # Re-verification changes the standings: still one pin, and an edit of the same message.
    world.verdict(first, 0, False, 0.1, 0.1)
    world.session.commit()
    edit = leaderboard_posts.refresh_pinned_leaderboard(
        session=world.session, round_id=r.id, now=world.now
    )
    assert edit.idempotency_key == f"round:{r.id}:leaderboard:update:1"
    assert edit.method == "chat_update" and edit.thread_key == post.idempotency_key
    world.session.commit()
    drain_posts(world, fake_slack)
    pins = fake_slack.calls_to("pins.add")
    updates = fake_slack.calls_to("chat.update")
    assert len(pins) == 1 and pins[0].args["channel"] == "CPUZZLE"
    assert len(updates) == 1 and updates[0].args["ts"] == pins[0].args["timestamp"]
    assert shown_text(updates[0]).index("UBOB") < shown_text(updates[0]).index("UALICE")

    # The round closes: the final standings show scores, private ones included, and links.
    r.status = RoundStatus.CLOSED
    world.session.commit()
    final = leaderboard_posts.refresh_pinned_leaderboard(
        session=world.session, round_id=r.id, now=world.now
    )
    assert final.idempotency_key == f"round:{r.id}:leaderboard:update:2"
    world.session.commit()
    drain_posts(world, fake_slack)
    closing = shown_text(fake_slack.calls_to("chat.update")[-1])
    assert "Final standings" in closing and "0.99" in closing and "secret.example" in closing
    assert len(fake_slack.calls_to("pins.add")) == 1
    rows = world.session.scalars(select(OutboxMessage.status)).all()
    assert set(rows) == {OutboxStatus.SENT}


def test_command_view_shows_public_scores_but_never_private_ones_while_open(world):
    r = world.round()
    world.submit(r, "UALICE", verdicts=[(2, True, 0.875, 0.123)])
    world.submit(r, "UBOB", hours=5)
    world.session.commit()
    board = leaderboards.round_leaderboard(
        session=world.session, round_id=r.id, now=r.opens_at + timedelta(days=1)
    )
    shown = json.dumps(build_round_leaderboard_message(board, viewer_id="UBOB"))
    assert "0.875" in shown and "0.123" not in shown
    assert "waiting for its verdict" in shown


def test_nothing_is_queued_for_a_pinned_post_that_failed(world, fake_slack):
    r = world.round(channel="CGONE")
    world.submit(r, "UALICE", verdicts=[(2, True, 0.9, 0.9)])
    world.session.commit()
    now = r.opens_at + timedelta(days=1)
    leaderboard_posts.refresh_pinned_leaderboard(session=world.session, round_id=r.id, now=now)
    world.session.commit()
    fake_slack.fail("chat.postMessage", "not_in_channel")
    world.now = now
    drain_posts(world, fake_slack)
    world.submit(r, "UBOB", verdicts=[(2, True, 0.8, 0.8)])
    world.session.commit()
    assert (
        leaderboard_posts.refresh_pinned_leaderboard(session=world.session, round_id=r.id, now=now)
        is None
    )
    # The pin queued with the post fails with it: there is nothing to pin.
    rows = world.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [(r.idempotency_key, r.status) for r in rows] == [
        (f"round:{r.id}:leaderboard", OutboxStatus.FAILED),
        (f"round:{r.id}:leaderboard:pin", OutboxStatus.FAILED),
    ]
    assert "nothing to pin" in rows[1].last_error
    assert fake_slack.calls_to("pins.add") == []


def test_edits_queued_before_the_dispatcher_runs_are_coalesced(world, fake_slack):
    r = world.round(channel="CPUZZLE")
    now = r.opens_at + timedelta(days=1)
    world.submit(r, "UALICE", verdicts=[(2, True, 0.9, 0.9)])
    world.session.commit()
    leaderboard_posts.refresh_pinned_leaderboard(session=world.session, round_id=r.id, now=now)
    world.session.commit()
    drain_posts(world, fake_slack)

    world.submit(r, "UBOB", verdicts=[(1, False, 0.5, 0.5)])
    world.session.commit()
    first = leaderboard_posts.refresh_pinned_leaderboard(
        session=world.session, round_id=r.id, now=now
    )
    world.session.commit()
    world.submit(r, "UCAROL", verdicts=[(2, True, 0.95, 0.95)])
    world.session.commit()
    second = leaderboard_posts.refresh_pinned_leaderboard(
        session=world.session, round_id=r.id, now=now
    )
    world.session.commit()
    assert second.id == first.id  # the pending edit now carries the newer standings
    drain_posts(world, fake_slack)
    updates = fake_slack.calls_to("chat.update")
    assert len(updates) == 1
    shown = shown_text(updates[0])
    assert shown.index("UCAROL") < shown.index("UALICE") < shown.index("UBOB")
