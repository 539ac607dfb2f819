"""Who keeps the pinned leaderboard current: each recorded verdict (``notifications``), and the
close (``flows.rounds.post_solutions``), which turns it into the final standings after the solutions post.

On SQLite and PostgreSQL; posts go through the real outbox to the fake Slack Web API server.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.leaderboards import World, drain_posts, shown_text

from bot import outbox
from bot.flows import rounds as round_flows
from bot.posts import leaderboards as leaderboard_posts
from bot.posts import submissions as notifications
from storage.models import Round, RoundStatus, SubmissionStatus

CHANNEL = "CPUZZLE"


@pytest.fixture
def world(database_url):
    w = World(database_url)
    yield w
    w.close()


def _verdict(world, submission, *verdict, now) -> None:
    """What the queue worker does: record a verdict, commit, then tell notifications."""
    world.verdict(submission, *verdict)
    submission.status = SubmissionStatus.VERIFIED
    world.session.commit()
    notifications.submission_updated(session=world.session, submission_id=submission.id, now=now)
    world.session.commit()


def _boards(fake_slack) -> list:
    """The channel's leaderboard posts and edits, in the order Slack got them."""
    return [
        c
        for c in fake_slack.calls
        if c.method in ("chat.postMessage", "chat.update")
        and c.args.get("channel") == CHANNEL
        and "standings for" in str(c.args.get("text"))
    ]


def test_verdicts_post_then_edit_the_pinned_board_and_the_close_makes_it_final(world, fake_slack):
    r = world.round(channel=CHANNEL)
    round_id = r.id
    opens, closes = r.opens_at, r.closes_at
    during = opens + timedelta(days=1)
    alice = world.submit(r, "UALICE", status=SubmissionStatus.RUNNING)
    bob = world.submit(r, "UBOB", hours=2, status=SubmissionStatus.RUNNING)
    world.session.commit()

    # Alice's verdict: the live board is posted in the round channel and pinned.
    _verdict(world, alice, 2, True, 0.8, 0.7, now=during)
    drain_posts(world, fake_slack)
    (post,) = _boards(fake_slack)
    assert post.method == "chat.postMessage" and post.args["text"].startswith("Live standings")
    assert "UALICE" in shown_text(post) and "0.8" not in shown_text(post)  # spoiler-free
    board_ts = outbox.get(
        session=world.session, key=leaderboard_posts.pinned_key(round_id)
    ).slack_ts
    (pin,) = fake_slack.calls_to("pins.add")
    assert pin.args == {"channel": CHANNEL, "timestamp": board_ts}

    # Bob's verdict edits the same message; telling notifications twice changes nothing.
    _verdict(world, bob, 2, True, 0.9, 0.6, now=during)
    notifications.submission_updated(session=world.session, submission_id=bob.id, now=during)
    world.session.commit()
    drain_posts(world, fake_slack)
    boards = _boards(fake_slack)
    assert [c.method for c in boards] == ["chat.postMessage", "chat.update"]
    assert boards[1].args["ts"] == board_ts
    shown = shown_text(boards[1])
    assert shown.index("UBOB") < shown.index("UALICE")  # public score, higher is better

    # Past the closing time but before the close ran: no final standings ahead of the solutions.
    carol = world.submit(r, "UCAROL", hours=3, status=SubmissionStatus.RUNNING)
    world.session.commit()
    _verdict(world, carol, 2, True, 0.5, 0.99, now=closes + timedelta(minutes=5))
    drain_posts(world, fake_slack)
    assert len(_boards(fake_slack)) == 2

    # The close: the solutions post, then the board edited into the final standings.
    after = closes + timedelta(minutes=10)
    round_flows.post_solutions(session=world.session, round_id=round_id, now=after)
    world.session.commit()
    drain_posts(world, fake_slack)
    channel_calls = [
        c
        for c in fake_slack.calls
        if c.method in ("chat.postMessage", "chat.update") and c.args.get("channel") == CHANNEL
    ]
    solutions_at = next(
        i for i, c in enumerate(channel_calls) if str(c.args.get("text")).startswith("Solutions")
    )
    final = channel_calls[solutions_at + 1]
    assert final.method == "chat.update" and final.args["ts"] == board_ts
    shown = shown_text(final)
    assert final.args["text"].startswith("Final standings")
    assert shown.index("UCAROL") < shown.index("UALICE") < shown.index("UBOB")  # private score
    assert "private 0.99" in shown
    # Posting the solutions again (an admin retrying) edits nothing.
    round_flows.post_solutions(session=world.session, round_id=round_id, now=after)
    world.session.commit()
    drain_posts(world, fake_slack)
    assert len(_boards(fake_slack)) == 3

    # A re-verification after the close edits the final standings.
    _verdict(world, carol, 1, False, 0.5, 0.1, now=after + timedelta(days=1))
    drain_posts(world, fake_slack)
    last = _boards(fake_slack)[-1]
    assert len(_boards(fake_slack)) == 4 and last.args["ts"] == board_ts
    assert shown_text(last).index("UALICE") < shown_text(last).index("UCAROL")
    assert len(fake_slack.calls_to("pins.add")) == 1


def test_a_rejected_upload_posts_no_board_and_an_empty_round_closes_without_one(world, fake_slack):
    r = world.round(channel=CHANNEL)
    round_id, closes = r.id, r.closes_at
    bad = world.submit(r, "UMALLORY", status=SubmissionStatus.REJECTED)
    world.session.commit()
    notifications.submission_updated(
        session=world.session, submission_id=bad.id, now=r.opens_at + timedelta(days=1)
    )
    world.session.commit()
    round_flows.post_solutions(session=world.session, round_id=round_id, now=closes)
    world.session.commit()
    drain_posts(world, fake_slack)
    assert _boards(fake_slack) == [] and fake_slack.calls_to("pins.add") == []
    assert outbox.get(session=world.session, key=leaderboard_posts.pinned_key(round_id)) is None
    assert world.session.get(Round, round_id).status == RoundStatus.SOLUTIONS_POSTED
