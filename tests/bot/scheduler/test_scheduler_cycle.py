"""The monthly cycle driven by the clock: what is posted, in which order, exactly once.

The clock is driven with time-machine (or an explicit ``now``); posts go through the outbox to the
fake Slack Web API server.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta

import pytest
import time_machine
from slack_sdk import WebClient
from support.scheduler import ADMIN, CHANNEL, make_settings, utc

from bot import outbox
from bot import scheduler as schedule
from bot.flows import hint_admin, round_admin
from bot.flows import rounds as round_flows
from bot.flows.hints import release_hint
from bot.services import hints, rounds
from storage.db import make_engine, session_factory, session_scope
from storage.models import (
    Blob,
    Credit,
    CreditKind,
    HintStatus,
    OutboxMessage,
    RoundStatus,
    SlackUser,
    Submission,
    SubmissionStatus,
    Verdict,
)

PLANNED_AT = utc(2026, 11, 25, 12)


def _plan_two_months(factory, settings, channel: str = CHANNEL) -> tuple[int, int]:
    with session_scope(factory) as s:
        dec = rounds.plan(
            session=s, slug="alpha", channel_id=channel, now=PLANNED_AT, settings=settings
        )
        jan = rounds.plan(
            session=s, slug="beta", channel_id=channel, now=PLANNED_AT, settings=settings
        )
        return dec.id, jan.id


def _add_solver(factory, round_id: int, user: str, *, private: float, public: float) -> None:
    """A verified, passing submission (rows written through the real schema)."""
    with session_scope(factory) as s:
        if s.get(SlackUser, user) is None:
            s.add(SlackUser(id=user, display_name=user.lower()))
        sha = hashlib.sha256(f"{user}{private}".encode()).hexdigest()
        s.add(Blob(sha256=sha, size=1, content=b"x"))
        sub = Submission(
            round_id=round_id,
            user_id=user,
            filename="solution.py",
            blob_sha256=sha,
            status=SubmissionStatus.VERIFIED,
            created_at=utc(2026, 12, 10),
        )
        s.add(sub)
        s.flush()
        s.add(
            Verdict(
                submission_id=sub.id,
                attempt=1,
                passed=True,
                checks_passed=2,
                public_score=public,
                private_score=private,
            )
        )


def _channel_posts(fake, channel: str = CHANNEL) -> list[str]:
    return [
        c.args["text"] for c in fake.calls_to("chat.postMessage") if c.args["channel"] == channel
    ]


def _heads(texts: list[str]) -> list[str]:
    """``New puzzle: Alpha...`` -> ``New puzzle``; ``Solutions for X. 2 submissions`` -> its title."""
    return [t.split(":")[0].split(".")[0] for t in texts]


def test_a_full_month_posts_exactly_the_expected_messages_in_order(
    any_url, any_factory, client, slack_server
) -> None:
    factory, settings = any_factory, make_settings(any_url)
    dec, jan = _plan_two_months(factory, settings)
    _add_solver(factory, dec, "UALICE", private=0.97, public=0.95)
    _add_solver(factory, dec, "UBOB", private=0.99, public=0.90)
    with session_scope(factory) as s:
        s.add(
            Credit(
                round_id=dec,
                user_id="UBOB",
                kind=CreditKind.BEST_SOLUTION,
                note="clean circuit",
                awarded_by=ADMIN,
            )
        )
        opens = rounds.require(session=s, round_id=dec).opens_at
        closes = rounds.require(session=s, round_id=dec).closes_at
        hint_times = [h.release_at for h in rounds.require(session=s, round_id=dec).hints]
    assert len(hint_times) == 3

    # Wake up every few hours through December and just after each due time, as a running bot
    # would (only more often).
    due = [opens, *hint_times, closes]
    moments = sorted(
        {PLANNED_AT + timedelta(hours=6 * n) for n in range(30)}
        | {t + timedelta(seconds=10) for t in due}
    )
    with time_machine.travel(PLANNED_AT, tick=False) as clock:
        for moment in moments:
            clock.move_to(moment)
            report = schedule.tick(
                session_factory=factory,
                settings=settings,
                client=client,
                per_channel_interval=0,
                sweep=False,
            )
            assert report.errors == [] and report.late == [] and report.missed == []
        # A second pass over the same time posts nothing more (a job that runs twice).
        schedule.tick(session_factory=factory, settings=settings, client=client, sweep=False)

    texts = _channel_posts(slack_server)
    assert _heads(texts) == [
        "New puzzle",
        "Hint 1 for Alpha palindromes",
        "Hint 2 for Alpha palindromes",
        "Hint 3 for Alpha palindromes",
        "Solutions for Alpha palindromes",
        # The verdicts above were written straight into the database (no worker told the bot),
        # so no live board was pinned during the month: the close posts the final standings,
        # after the solutions and before the next puzzle, and pins them.
        "Final standings for Alpha palindromes",
        "New puzzle",
    ]
    assert texts[0].startswith("New puzzle: Alpha palindromes")
    assert texts[6].startswith("New puzzle: Beta sorting")
    final = slack_server.calls_to("chat.postMessage")[5]
    final_body = str(final.args["blocks"])
    assert final_body.index("<@UBOB>") < final_body.index("<@UALICE>")  # by private score
    assert "private 0.99" in final_body
    (pin,) = slack_server.calls_to("pins.add")
    assert pin.args["channel"] == CHANNEL
    assert texts[1] == "Hint 1 for Alpha palindromes: Look at head L0H1."
    assert slack_server.calls_to("chat.postMessage")[0].args["channel"] == CHANNEL

    solutions = slack_server.calls_to("chat.postMessage")[4].args
    body = str(solutions["blocks"])
    assert "<@UBOB>" in body and "clean circuit" in body  # credited winner
    assert body.index("<@UBOB>: private score 0.990") < body.index("<@UALICE>: private score 0.970")
    assert "L0H1 attends to the mirrored position" in body  # the reference write-up
    assert "2 submission(s) from 2 participant(s)" in body
    assert "Next puzzle: *Beta sorting*" in body
    announcement = str(slack_server.calls_to("chat.postMessage")[0].args["blocks"])
    assert "Find the circuit." in announcement and "How to submit" in announcement
    assert "Deadline" in announcement and "<!date^" in announcement

    with session_scope(factory) as s:
        assert rounds.require(session=s, round_id=dec).status == RoundStatus.SOLUTIONS_POSTED
        assert rounds.require(session=s, round_id=jan).status == RoundStatus.OPEN
        assert [h.text for h in hints.released(session=s, round_id=dec)][0] == "Look at head L0H1."
        keys = [m.idempotency_key for m in s.query(OutboxMessage).order_by(OutboxMessage.id)]
        board_ts = outbox.get(session=s, key=f"round:{dec}:leaderboard").slack_ts
    assert pin.args["timestamp"] == board_ts
    assert keys == [
        f"round:{dec}:announce",
        *[f"hint:{i}:release" for i in (1, 2, 3)],
        f"round:{dec}:solutions",
        f"round:{dec}:leaderboard",
        f"round:{dec}:leaderboard:pin",
        f"round:{jan}:announce",
    ]


def test_ticks_that_run_twice_or_at_once_post_once(any_url, catalog) -> None:
    settings = make_settings(any_url)
    engine = make_engine(any_url)
    factory = session_factory(engine)
    try:
        dec, _ = _plan_two_months(factory, settings)
        # Everything of December is due at once (the bot was down, within the grace window).
        with session_scope(factory) as s:
            round_ = rounds.require(session=s, round_id=dec)
            round_.closes_at = utc(2026, 12, 1, 18)
            for n, hint in enumerate(round_.hints):
                hint.release_at = utc(2026, 12, 1, 16, 10 + n)
        now = utc(2026, 12, 1, 18, 30)
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                barrier.wait()
                schedule.run_cycle(session_factory=factory, settings=settings, now=now)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        schedule.run_cycle(session_factory=factory, settings=settings, now=now)
        # An admin re-posting by hand is just as harmless.
        with session_scope(factory) as s:
            round_flows.announce_round(session=s, round_id=dec, now=now)
            release_hint(session=s, hint_id=1, now=now)
        assert errors == []
        with session_scope(factory) as s:
            keys = [
                m.idempotency_key
                for m in s.query(OutboxMessage).order_by(OutboxMessage.id)
                if not m.idempotency_key.startswith("notice:")
            ]
        # January opens on 1 Jan: not due yet.
        assert sorted(keys) == sorted(
            [f"round:{dec}:announce", "hint:1:release", "hint:2:release", "hint:3:release"]
            + [f"round:{dec}:solutions"]
        )
    finally:
        engine.dispose()


def _notices(factory) -> list[OutboxMessage]:
    with session_scope(factory) as s:
        return [
            m
            for m in s.query(OutboxMessage).order_by(OutboxMessage.id)
            if m.idempotency_key.startswith("notice:")
        ]


def test_a_post_due_during_downtime_within_the_grace_window_is_posted_and_admins_told(
    factory, settings
) -> None:
    dec, _ = _plan_two_months(factory, settings)
    opens = utc(2026, 12, 1, 16)
    schedule.run_cycle(session_factory=factory, settings=settings, now=opens)
    assert _notices(factory) == []
    # The bot was down over hint 1's time (8 Dec 16:00 UTC) and comes back 2 hours later.
    report = schedule.run_cycle(
        session_factory=factory, settings=settings, now=utc(2026, 12, 8, 18)
    )
    assert report.posted == report.late == ["hint:1:release"]
    [notice] = _notices(factory)
    assert notice.payload["channel"] == ADMIN  # a DM to each admin
    assert "hint #1 of round #1 was due Tue 08 Dec 2026 17:00 CET" in notice.payload["text"]
    assert "posted late" in notice.payload["text"]


def test_a_post_due_beyond_the_grace_window_is_reported_not_posted(factory, url) -> None:
    settings = make_settings(url, admin_channel="CADMINS", schedule_grace_hours=1)
    dec, _ = _plan_two_months(factory, settings)
    # Down from before the opening until 3 hours after it.
    report = schedule.run_cycle(
        session_factory=factory, settings=settings, now=utc(2026, 12, 1, 19)
    )
    assert report.posted == [] and report.missed == [f"round:{dec}:announce"]
    with session_scope(factory) as s:
        assert rounds.require(session=s, round_id=dec).status == RoundStatus.OPEN
        assert (
            s.query(OutboxMessage).filter_by(idempotency_key=f"round:{dec}:announce").count() == 0
        )
    [notice] = _notices(factory)
    assert notice.payload["channel"] == "CADMINS"
    assert "NOT posted" in notice.payload["text"]
    assert f"`/puzzle admin round announce {dec}`" in notice.payload["text"]
    assert f"`circuitboard rounds announce {dec}`" in notice.payload["text"]

    # A hint missed the same way becomes `missed`; an admin can still release it by hand.
    report = schedule.run_cycle(
        session_factory=factory, settings=settings, now=utc(2026, 12, 8, 20)
    )
    assert report.missed == ["hint:1:release"]
    with session_scope(factory) as s:
        assert hints.require(session=s, hint_id=1).status == HintStatus.MISSED
        reply = hint_admin.admin_hint_command(
            session=s, text="release 1", actor_id=ADMIN, now=utc(2026, 12, 8, 21), settings=settings
        )
        assert reply.startswith("Released hint #1")
        reply = round_admin.admin_round_command(
            session=s,
            text=f"announce {dec}",
            actor_id=ADMIN,
            channel_id=CHANNEL,
            now=utc(2026, 12, 8, 21),
            settings=settings,
        )
        assert reply == f"Queued `round:{dec}:announce` (posted once, however often this is asked)."
    with session_scope(factory) as s:
        keys = {m.idempotency_key for m in s.query(OutboxMessage)}
    assert {"hint:1:release", f"round:{dec}:announce"} <= keys


def test_solutions_then_next_announcement_even_after_downtime_across_the_boundary(
    factory, settings, client, slack_server
) -> None:
    dec, jan = _plan_two_months(factory, settings)
    with session_scope(factory) as s:
        for hint in rounds.require(session=s, round_id=dec).hints:
            hints.cancel(session=s, hint_id=hint.id, now=PLANNED_AT, settings=settings)
    schedule.tick(
        session_factory=factory,
        settings=settings,
        client=client,
        now=utc(2026, 12, 1, 16, 1),
        per_channel_interval=0,
        sweep=False,
    )
    # Down from 31 Dec to 1 Jan 18:00 UTC: the close and the next opening are both due.
    for _ in range(2):
        report = schedule.tick(
            session_factory=factory,
            settings=settings,
            client=client,
            now=utc(2027, 1, 1, 18),
            per_channel_interval=0,
            sweep=False,
        )
    texts = _channel_posts(slack_server)
    assert _heads(texts) == ["New puzzle", "Solutions for Alpha palindromes", "New puzzle"]
    assert texts[2].startswith("New puzzle: Beta sorting")
    admin_texts = [
        c.args["text"]
        for c in slack_server.calls_to("chat.postMessage")
        if c.args["channel"] != CHANNEL
    ]
    assert len(admin_texts) == 2 and all("posted late" in t for t in admin_texts)
    assert report.posted == []


def test_outbox_rows_are_paced_but_keep_their_order(factory, settings, slack_server) -> None:
    """With Slack's one-post-a-second pacing, the next announcement waits for the solutions."""
    client = WebClient(token=slack_server.token, base_url=slack_server.api_url)
    dec, _ = _plan_two_months(factory, settings, channel="CPACED")
    schedule.run_cycle(session_factory=factory, settings=settings, now=utc(2026, 12, 1, 16))
    with session_scope(factory) as s:
        rounds.require(session=s, round_id=dec).closes_at = utc(2026, 12, 2)
        for hint in rounds.require(session=s, round_id=dec).hints:
            hints.cancel(session=s, hint_id=hint.id, now=utc(2026, 12, 1, 17), settings=settings)
    schedule.run_cycle(session_factory=factory, settings=settings, now=utc(2026, 12, 2, 0, 1))
    outbox.dispatch_pending(session_factory=factory, client=client, per_channel_interval=3600)
    assert _heads(_channel_posts(slack_server, "CPACED")) == ["New puzzle"]
    outbox.dispatch_pending(session_factory=factory, client=client, per_channel_interval=0)
    outbox.dispatch_pending(session_factory=factory, client=client, per_channel_interval=0)
    assert _heads(_channel_posts(slack_server, "CPACED")) == [
        "New puzzle",
        "Solutions for Alpha palindromes",
    ]


@pytest.mark.parametrize("hours_late", [0, 5])
def test_cancelled_rounds_post_nothing(factory, settings, hours_late) -> None:
    dec, _ = _plan_two_months(factory, settings)
    with session_scope(factory) as s:
        rounds.cancel(session=s, round_id=dec, now=PLANNED_AT)
    report = schedule.run_cycle(
        session_factory=factory, settings=settings, now=utc(2026, 12, 20, 16 + hours_late)
    )
    assert report.posted == [] and report.missed == []
