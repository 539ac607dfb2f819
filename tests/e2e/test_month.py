"""A whole month of the puzzle, end to end, through the fake Slack server with a driven clock.

What runs for real: the Bolt app in HTTP mode (signed requests), the upload path (DM file shares
downloaded from the fake server), the queue (SQLite broker, or Redis), ``circuitboard worker``
subprocesses running the sandboxed verification engine, the outbox, the notifications, the
leaderboard, credits and the scheduler's cycle. The clock is driven: the scheduler's ``tick`` is
called with an explicit ``now`` at each due time of the month (announcement, three hints, closing)
instead of waiting for it. The month is laid out around the real present, so the parts that read
the real clock (the Bolt app, the workers) find the round open while users submit:

    opens T-15d | hint 1 T-8d | hint 2 T-1d | submissions at T (now) | hint 3 T+6d | closes T+10d

The same month runs on SQLite with its embedded broker and one worker, then on PostgreSQL + Redis
with two workers.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from e2e_support import (
    FINAL,
    MONTH_VERIFY,
    bolt_http_app,
    e2e_env,
    wait_for,
)
from sqlalchemy import select
from support.workers import running_workers

from bot import scheduler as schedule
from bot.posts import rounds as round_posts
from bot.services import rounds
from bot.settings import get_settings
from puzzles.catalog import get_puzzle
from storage.db import session_factory, session_scope, upgrade_database
from storage.models import OutboxMessage, OutboxStatus, Submission, utcnow

CHANNEL = "CPUZZLE"
ADMIN = "UADMIN"
ALICE, BOB, MALLORY = "UALICE", "UBOB", "UMALLORY"
PUZZLE, NEXT_PUZZLE = "palindromes", "sorted_list"

WRONG = b'''"""Plausible but wrong: only the outermost pair is compared."""

import torch

CIRCUIT = ["L0H0", "L0H1", "L1H1"]


def predict(tokens: torch.Tensor) -> torch.Tensor:
    body = tokens[:, 1:-1]
    return (body[:, 0] == body[:, -1]).long()
'''

TIME_LIMIT = json.loads(MONTH_VERIFY)["timeout_s"]  # the hostile file runs into it

HOSTILE = b'''"""Hostile: looks for the bot's secrets, then never returns."""

import os

STOLEN = {k: v for k, v in os.environ.items() if any(w in k for w in ("TOKEN", "SECRET", "URL"))}
if STOLEN:
    raise RuntimeError(f"stolen: {STOLEN!r}")


def predict(tokens):
    while True:
        pass
'''


def _texts(call: Any) -> str:
    """A message's text and every text in its blocks, as one string."""
    parts = [str(call.args.get("text") or "")]
    for block in call.args.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(str(text.get("text", "")))
        for element in block.get("elements") or []:
            if isinstance(element, dict) and "text" in element:
                parts.append(str(element["text"]))
    return "\n".join(parts)


BOARD_PREFIXES = ("Live standings", "Final standings")


def _top_level(fake) -> list[Any]:
    """The channel's own posts, in order (the pinned leaderboard message aside)."""
    return [
        c
        for c in fake.calls_to("chat.postMessage")
        if c.args.get("channel") == CHANNEL
        and not c.args.get("thread_ts")
        and not str(c.args.get("text")).startswith(BOARD_PREFIXES)
    ]


def _board_posts(fake) -> list[Any]:
    """The pinned leaderboard message: its post, then its edits."""
    return [
        c
        for c in fake.calls
        if c.method in ("chat.postMessage", "chat.update")
        and c.args.get("channel") == CHANNEL
        and str(c.args.get("text")).startswith(BOARD_PREFIXES)
    ]


def _head(call: Any) -> str:
    return str(call.args.get("text")).split(":")[0].split(".")[0]


@pytest.fixture(
    params=["sqlite", pytest.param("redis", marks=[pytest.mark.postgres, pytest.mark.redis])]
)
def system(request, tmp_path, monkeypatch, fake_slack):
    """Settings shared by the test and its worker subprocesses; (settings, workers to start)."""
    if request.param == "sqlite":
        db = tmp_path / "data" / "circuitboard.db"
        urls = {"database": f"sqlite:///{db}", "broker": f"sqla+sqlite:///{db}"}
        n_workers = 1
    else:
        urls = {
            "database": request.getfixturevalue("postgres_url"),
            "broker": request.getfixturevalue("redis_url"),
        }
        n_workers = 2
    env = e2e_env(
        CIRCUITBOARD_DATABASE_URL=urls["database"],
        CIRCUITBOARD_BROKER_URL=urls["broker"],
        CIRCUITBOARD_SLACK_BOT_TOKEN=fake_slack.token,
        CIRCUITBOARD_SLACK_API_URL=fake_slack.api_url,
        CIRCUITBOARD_ADMINS=ADMIN,
        CIRCUITBOARD_LEASE_SECONDS="30",
        CIRCUITBOARD_REQUEUE_AFTER="30",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    settings = get_settings()
    settings.ensure_data_dir()
    upgrade_database(settings.db_url)
    return settings, n_workers


def _reference_with_hypothesis(slug: str) -> bytes:
    """The reference hypothesis, then the reference solution (its ``predict`` and ``CIRCUIT`` win):
    a winning file must declare variables to be credited best solution."""
    puzzle = get_puzzle(slug)
    hypothesis = (puzzle.path / "hypothesis.py").read_bytes()
    return hypothesis + b"\n\n" + puzzle.solution_path.read_bytes()


@pytest.mark.timeout(600)
def test_a_whole_month_through_slack(system, fake_slack, tmp_path) -> None:
    settings, n_workers = system
    factory = session_factory(settings.db_url)
    now = utcnow().replace(second=0, microsecond=0)
    with session_scope(factory) as session:
        first = rounds.plan(
            session=session,
            slug=PUZZLE,
            channel_id=CHANNEL,
            now=now - timedelta(days=20),
            opens_at=now - timedelta(days=15),
            closes_at=now + timedelta(days=10),
            created_by=ADMIN,
            settings=settings,
        )
        following = rounds.plan(
            session=session,
            slug=NEXT_PUZZLE,
            channel_id=CHANNEL,
            now=now - timedelta(days=20),
            opens_at=first.closes_at,
            closes_at=first.closes_at + timedelta(days=30),
            created_by=ADMIN,
            settings=settings,
        )
        round_id, opens, closes = first.id, first.opens_at, first.closes_at
        hint_times = [hint.release_at for hint in first.hints]
        assert following.opens_at == closes
    assert len(hint_times) == 3 and hint_times[1] < now < hint_times[2]

    def tick(at, *, posts: int) -> None:
        """The scheduler wakes at ``at``; then ``posts`` top-level posts must be in the channel."""
        report = schedule.tick(
            session_factory=factory,
            settings=settings,
            # The bot's outbox dispatcher (real clock) sends what the cycle queues: a second
            # dispatcher on the driven clock would take the first one's fresh claims for expired.
            client=None,
            now=at,
            per_channel_interval=0,
            sweep=False,
        )
        assert report.errors == [] and report.late == [] and report.missed == [], report
        wait_for(
            lambda: len(_top_level(fake_slack)) >= posts,
            timeout=120,
            what=f"{posts} posts in {CHANNEL}",
        )

    with (
        running_workers(tmp_path / "logs") as workers,
        bolt_http_app(settings, fake_slack) as (slack, _app),
    ):
        for _ in range(n_workers):
            workers.start()
        second = timedelta(seconds=10)
        tick(opens + second, posts=1)  # the announcement
        tick(hint_times[0] + second, posts=2)
        tick(hint_times[1] + second, posts=3)
        for worker in workers.started:
            workers.wait_ready(worker)

        # Three users DM the bot their files, now (the middle of the month).
        uploads = {
            ALICE: ("solution.py", _reference_with_hypothesis(PUZZLE)),
            BOB: ("my_palindromes.py", WRONG),
            MALLORY: ("totally_fine.py", HOSTILE),
        }
        threads: dict[str, str] = {}
        for n, (user, (name, content)) in enumerate(uploads.items(), start=1):
            ts = f"{int(now.timestamp())}.{n:06d}"
            slack.share_file(user=user, file_id=f"F{n:04d}", name=name, content=content, ts=ts)
            threads[user] = ts

        def finished() -> list[Submission] | None:
            schedule.run_sweep(session_factory=factory, settings=settings, now=utcnow())
            with session_scope(factory) as session:
                rows = list(session.scalars(select(Submission).order_by(Submission.id)))
            if len(rows) == 3 and all(row.status in FINAL for row in rows):
                return rows
            return None

        rows = wait_for(finished, timeout=420, what="three final verdicts", every=1.0)
        by_user = {row.user_id: row for row in rows}
        assert by_user[ALICE].status == "verified"
        assert by_user[BOB].status == "verified"
        assert by_user[MALLORY].status in ("rejected", "failed"), by_user[MALLORY].message
        assert f"did not finish within {TIME_LIMIT} s" in (by_user[MALLORY].message or "")
        assert all(row.attempts == 1 for row in rows), [(r.id, r.attempts) for r in rows]

        def all_sent() -> bool:
            with session_scope(factory) as session:
                rows = list(session.scalars(select(OutboxMessage)))
            assert not [r.idempotency_key for r in rows if r.status == OutboxStatus.FAILED]
            return all(r.status == OutboxStatus.SENT for r in rows)

        wait_for(all_sent, timeout=60, what="the outbox to drain")

        # Verdicts: once each, in the thread of the user's file message in their DM.
        posts = fake_slack.calls_to("chat.postMessage")

        def in_thread(user: str) -> list[Any]:
            return [
                c
                for c in posts
                if c.args.get("channel") == "D" + user[1:]
                and c.args.get("thread_ts") == threads[user]
            ]

        def verdicts(user: str) -> list[Any]:
            return [c for c in in_thread(user) if "Verdict for submission" in _texts(c)]

        (alice_verdict,) = verdicts(ALICE)
        assert "passed :tada:" in _texts(alice_verdict)
        (bob_verdict,) = verdicts(BOB)
        assert "did not pass" in _texts(bob_verdict)
        assert verdicts(MALLORY) == []
        (refusal,) = [c for c in in_thread(MALLORY) if "rejected" in _texts(c)]
        assert f"did not finish within {TIME_LIMIT} s" in _texts(refusal)
        plots = fake_slack.calls_to("files.completeUploadExternal")
        assert threads[ALICE] in [p.args.get("thread_ts") for p in plots]
        # Verdicts go to DMs only, never to a channel.
        assert all(c.args["channel"].startswith("D") for c in posts if "Verdict for" in _texts(c))

        # The channel hears one spoiler-free line, in the announcement's thread.
        lines = [
            c
            for c in posts
            if c.args.get("channel") == CHANNEL and c.args.get("thread_ts") is not None
        ]
        assert [c.args["text"] for c in lines] == [
            f"<@{ALICE}> verified a solution :white_check_mark:"
        ]
        assert lines[0].args["thread_ts"] == _announcement_ts(factory, round_id)

        # The leaderboard ranks the correct solution first; the hostile one does not rank.
        board = _texts_of(slack.command_answer("leaderboard", user=BOB))
        assert f"*1.* <@{ALICE}>" in board, board
        assert f"*2.* <@{BOB}>" in board, board
        assert f"<@{MALLORY}>" not in board, board
        # The pinned board in the channel (when the bot keeps one) agrees, without scores.
        pinned = _board_posts(fake_slack)
        assert len([c for c in pinned if c.method == "chat.postMessage"]) <= 1
        if pinned:
            assert f"*1.* <@{ALICE}>" in _texts(pinned[-1]), _texts(pinned[-1])

        # Credits: refused for a member, awarded by the configured admin.
        refused = _texts_of(
            slack.command_answer(f'admin credit <@{BOB}> best "me me me"', user=BOB)
        )
        assert "Awarded" not in refused
        awarded = _texts_of(
            slack.command_answer(f'admin credit <@{ALICE}> best "clean circuit"', user=ADMIN)
        )
        assert f"Awarded best solution to <@{ALICE}>" in awarded, awarded

        # The rest of the month: hint 3, then the closing (solutions, then the next puzzle).
        tick(hint_times[2] + second, posts=4)
        tick(closes + second, posts=6)
        tick(closes + second, posts=6)  # a second wake-up at the same time posts nothing
        wait_for(all_sent, timeout=60, what="the outbox to drain")

    top = _top_level(fake_slack)
    title = get_puzzle(PUZZLE).title
    next_title = get_puzzle(NEXT_PUZZLE).title
    assert [_head(c) for c in top] == [
        "New puzzle",
        f"Hint 1 for {title}",
        f"Hint 2 for {title}",
        f"Hint 3 for {title}",
        f"Solutions for {title}",
        "New puzzle",
    ], [c.args.get("text") for c in top]
    assert title in top[0].args["text"] and next_title in top[5].args["text"]
    solutions = _texts(top[4])
    assert f": <@{ALICE}>: clean circuit" in solutions, solutions
    assert f"1. <@{ALICE}>: private score" in solutions, solutions
    assert f"<@{BOB}>: me me me" not in solutions

    # Exactly once: no message was posted twice anywhere.
    seen = Counter(
        (c.args.get("channel"), c.args.get("thread_ts"), c.args.get("text"))
        for c in fake_slack.calls_to("chat.postMessage")
    )
    assert [key for key, n in seen.items() if n > 1] == []
    # Secrets never reach Slack, whatever the hostile file tried.
    every_arg = repr([c.args for c in fake_slack.calls])
    for secret in (fake_slack.token, "e2e-signing-secret"):
        assert secret not in every_arg


def _texts_of(answer: dict[str, Any]) -> str:
    class _Call:
        args = answer

    return _texts(_Call)


def _announcement_ts(factory, round_id: int) -> str | None:
    with session_scope(factory) as session:
        row = session.scalar(
            select(OutboxMessage).where(
                OutboxMessage.idempotency_key == round_posts.announce_key(round_id)
            )
        )
        return row.slack_ts if row is not None else None
