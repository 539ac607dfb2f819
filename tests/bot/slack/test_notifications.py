"""notifications.submission_updated: what each state posts, and nothing twice."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.posts import submissions as notifications
from storage.db import session_factory, session_scope, upgrade_database
from storage.models import (
    Blob,
    OutboxMessage,
    PuzzleVersion,
    Round,
    RoundStatus,
    SlackUser,
    Submission,
    SubmissionStatus,
    Verdict,
    utcnow,
)


@pytest.fixture
def factory(sqlite_url):
    upgrade_database(sqlite_url)
    return session_factory(sqlite_url)


def _submission(session, *, thread_ts: str | None = "111.222") -> Submission:
    now = utcnow()
    version = PuzzleVersion(slug="palindromes", version=1, weights_sha256="0" * 64, title="P")
    round_ = Round(
        puzzle_version=version,
        channel_id="C0ROUND001",
        opens_at=now - timedelta(days=1),
        closes_at=now + timedelta(days=1),
        status=RoundStatus.OPEN,
    )
    session.add_all(
        [round_, SlackUser(id="U0USER0001"), Blob(sha256="a" * 64, size=1, content=b"x")]
    )
    session.flush()
    sub = Submission(
        round_id=round_.id,
        user_id="U0USER0001",
        filename="s.py",
        blob_sha256="a" * 64,
        status=SubmissionStatus.QUEUED,
        dm_channel="D1",
        thread_ts=thread_ts,
    )
    session.add(sub)
    session.flush()
    return sub


def _rows(session) -> list[tuple[str, str, str | None]]:
    return [
        (r.idempotency_key, r.method, r.thread_key)
        for r in session.query(OutboxMessage).order_by(OutboxMessage.id)
    ]


def test_each_state_posts_once(factory):
    with session_scope(factory) as s:
        sub = _submission(s)
        notifications.submission_updated(session=s, submission_id=sub.id)
        notifications.submission_updated(session=s, submission_id=sub.id)
        assert _rows(s) == [(f"submission:{sub.id}:status", "chat_postMessage", None)]
        first = s.query(OutboxMessage).one()
        assert first.payload["thread_ts"] == "111.222" and first.payload["channel"] == "D1"

        sub.status, sub.stage, sub.attempts = SubmissionStatus.RUNNING, "replication", 1
        notifications.submission_updated(session=s, submission_id=sub.id)
        notifications.submission_updated(session=s, submission_id=sub.id)
        assert len(_rows(s)) == 2
        assert _rows(s)[1][1:] == ("chat_update", f"submission:{sub.id}:status")

        s.add(
            Verdict(
                submission_id=sub.id,
                attempt=1,
                passed=True,
                checks_passed=2,
                public_score=0.9,
                report_md="## Report\n**ok**",
                plot_png=b"\x89PNG",
                runtime_s=1.0,
            )
        )
        sub.status = SubmissionStatus.VERIFIED
        s.flush()
        s.expire(sub, ["verdicts"])
        for _ in range(2):
            notifications.submission_updated(session=s, submission_id=sub.id)
        keys = [k for k, _, _ in _rows(s)]
        assert keys.count(f"submission:{sub.id}:verdict:1") == 1
        assert keys.count(f"submission:{sub.id}:verdict:1:plot") == 1
        assert keys.count("round:1:verified:U0USER0001") == 1
        verdict = (
            s.query(OutboxMessage).filter_by(idempotency_key=f"submission:{sub.id}:verdict:1").one()
        )
        assert verdict.payload["thread_ts"] == "111.222"
        line = s.query(OutboxMessage).filter_by(idempotency_key="round:1:verified:U0USER0001").one()
        assert line.payload["channel"] == "C0ROUND001" and "Report" not in str(line.payload)


def test_modal_submission_threads_under_its_status_and_failures_are_told(factory):
    with session_scope(factory) as s:
        sub = _submission(s, thread_ts=None)
        sub.dm_channel = None
        notifications.submission_updated(session=s, submission_id=sub.id)
        sub.status, sub.message, sub.attempts = (
            SubmissionStatus.REJECTED,
            "syntax error on line 3",
            1,
        )
        notifications.submission_updated(session=s, submission_id=sub.id)
        rows = _rows(s)
        assert rows[0] == (f"submission:{sub.id}:status", "chat_postMessage", None)
        failure = (
            s.query(OutboxMessage)
            .filter_by(idempotency_key=f"submission:{sub.id}:rejected:1")
            .one()
        )
        assert failure.thread_key == f"submission:{sub.id}:status"
        assert (
            failure.payload["channel"] == "U0USER0001"
            and "syntax error on line 3" in failure.payload["text"]
        )


def test_no_channel_line_after_the_round_closed(factory):
    with session_scope(factory) as s:
        sub = _submission(s)
        s.add(Verdict(submission_id=sub.id, attempt=1, passed=True, checks_passed=2, report_md="r"))
        sub.status = SubmissionStatus.VERIFIED
        s.flush()
        s.expire(sub, ["verdicts"])
        notifications.submission_updated(
            session=s, submission_id=sub.id, now=utcnow() + timedelta(days=2)
        )
        assert not [k for k, _, _ in _rows(s) if k.startswith("round:")]
