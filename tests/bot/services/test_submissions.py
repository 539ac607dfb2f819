"""The submission row as the truth: creation, fair queuing, leases, verdicts, re-verification and
the sweeper, on SQLite and PostgreSQL, with a controlled clock (no worker processes here)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from support.queue import seed_round, solution

from bot.flows import submission as submission_flow
from bot.queue import queue_depth
from bot.services import leases, submissions, sweeper
from bot.settings import get_settings
from storage.db import make_engine, session_factory, session_scope, upgrade_database
from storage.models import Blob, Submission, SubmissionStatus, Verdict, utcnow

S = SubmissionStatus


@pytest.fixture
def env(database_url, monkeypatch):
    monkeypatch.setenv("CIRCUITBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("CIRCUITBOARD_LEASE_SECONDS", "30")
    monkeypatch.setenv("CIRCUITBOARD_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("CIRCUITBOARD_DAILY_SUBMISSION_LIMIT", "3")
    get_settings.cache_clear()
    settings = get_settings()
    upgrade_database(settings.db_url)
    factory = session_factory(make_engine(settings.db_url))
    return settings, factory, seed_round(factory)


def _create(factory, round_id, user="U1", tag="", now=None, **kwargs):
    with submission_flow.unit_of_work(factory) as session:
        row = submissions.create_submission(
            session=session,
            round_id=round_id,
            user_id=user,
            filename=kwargs.pop("filename", "solution.py"),
            content=kwargs.pop("content", solution(tag=tag)),
            now=now,
            **kwargs,
        )
        return row.id


def _row(factory, submission_id) -> Submission:
    with session_scope(factory) as session:
        row = session.get(Submission, submission_id)
        assert row is not None
        return row


def _claim(factory, submission_id, owner, now=None):
    with session_scope(factory) as session:
        return leases.claim(session=session, submission_id=submission_id, owner=owner, now=now)


def _verdict(factory, submission_id, owner, attempt, **fields):
    with submission_flow.unit_of_work(factory) as session:
        return leases.record_verdict(
            session=session,
            submission_id=submission_id,
            owner=owner,
            attempt=attempt,
            outcome=leases.Outcome(passed=True, checks_passed=2, public_score=0.99, **fields),
        )


def test_upload_is_stored_once_and_deduplicated_by_slack_file(env) -> None:
    _settings, factory, round_id = env
    first = _create(factory, round_id, user="U1", slack_file_id="F1")
    again = _create(factory, round_id, user="U1", slack_file_id="F1")
    _create(factory, round_id, user="U2", slack_file_id="F2")  # same bytes, another user
    assert first == again
    with session_scope(factory) as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 2
        assert session.scalar(select(func.count()).select_from(Blob)) == 1
        row = session.get(Submission, first)
        assert submissions.read_content(session=session, submission=row) == solution()


def test_bad_uploads_are_refused_before_anything_is_stored(env) -> None:
    _settings, factory, round_id = env
    with pytest.raises(submissions.UploadRefused, match=r"\.py file or a \.ipynb"):
        _create(factory, round_id, filename="solution.txt")
    with pytest.raises(submissions.UploadRefused, match="empty"):
        _create(factory, round_id, content=b"")
    with pytest.raises(submissions.UploadRefused, match="limit is 1,000,000"):
        _create(factory, round_id, content=b"#" * 1_000_001)
    with pytest.raises(submissions.RoundNotOpen):
        _create(factory, round_id + 99)
    with session_scope(factory) as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 0


def test_fair_queuing_holds_a_burst_until_the_active_one_finishes(env) -> None:
    settings, factory, round_id = env
    burst = [_create(factory, round_id, user="U1", tag=str(i)) for i in range(3)]
    someone_else = _create(factory, round_id, user="U2")
    assert [_row(factory, i).status for i in burst] == [S.QUEUED, S.RECEIVED, S.RECEIVED]
    assert _row(factory, someone_else).status == S.QUEUED
    assert queue_depth(settings)["cpu"] == 2  # one message per queued row, published after commit

    attempt = _claim(factory, burst[0], "w1")
    assert attempt == 1
    assert _row(factory, burst[1]).status == S.RECEIVED  # still one active job for U1
    assert _verdict(factory, burst[0], "w1", attempt) is not None
    assert [_row(factory, i).status for i in burst] == [S.VERIFIED, S.QUEUED, S.RECEIVED]
    assert queue_depth(settings)["cpu"] == 3


def test_a_plain_commit_publishes_nothing_and_the_sweeper_resends_it(env) -> None:
    """No commit hook: only a flow publishes. A row committed without its publish (a process
    killed between the two) is re-sent by the sweeper once ``requeue_after`` has passed."""
    settings, factory, round_id = env
    with session_scope(factory) as session:
        sid = submissions.create_submission(
            session=session, round_id=round_id, user_id="U1", filename="s.py", content=solution()
        )
        sid = sid.id
    assert _row(factory, sid).status == S.QUEUED
    assert queue_depth(settings)["cpu"] == 0
    later = utcnow() + timedelta(seconds=settings.requeue_after + 1)
    assert submission_flow.sweep(session_factory=factory, now=later).resent == [sid]
    assert queue_depth(settings)["cpu"] == 1


def test_daily_limit_counts_uploads_but_not_system_failures(env) -> None:
    _settings, factory, round_id = env
    now = utcnow()
    ids = [_create(factory, round_id, tag=str(i), now=now) for i in range(3)]
    with pytest.raises(submissions.DailyLimitReached, match="all 3 submissions") as refused:
        _create(factory, round_id, tag="4", now=now)
    assert refused.value.next_slot == now + timedelta(hours=24)

    attempt = _claim(factory, ids[0], "w1", now=now)
    with session_scope(factory) as session:  # e.g. the time limit: the system's failure
        assert leases.fail(
            session=session, submission_id=ids[0], owner="w1", attempt=attempt, message="limit"
        )
    fourth = _create(factory, round_id, tag="4", now=now)
    assert _row(factory, fourth).status == S.RECEIVED
    # a day later the allowance is back
    _create(factory, round_id, tag="5", now=now + timedelta(hours=24, seconds=1))


def test_claim_is_exclusive_and_a_lost_lease_records_nothing(env) -> None:
    _settings, factory, round_id = env
    sid = _create(factory, round_id)
    now = utcnow()
    assert _claim(factory, sid, "w1", now=now) == 1
    assert _claim(factory, sid, "w2", now=now) is None  # lease held
    # w1 vanished: after its lease expires another worker may take over (attempt 2)
    later = now + timedelta(seconds=31)
    assert _claim(factory, sid, "w2", now=later) == 2
    with session_scope(factory) as session:
        assert not leases.renew_lease(session=session, submission_id=sid, owner="w1", attempt=1)
        assert not leases.set_stage(
            session=session, submission_id=sid, owner="w1", attempt=1, stage="circuit"
        )
        assert leases.set_stage(
            session=session, submission_id=sid, owner="w2", attempt=2, stage="circuit"
        )
    assert _verdict(factory, sid, "w1", 1) is None  # the zombie's result is dropped
    verdict = _verdict(factory, sid, "w2", 2)
    assert verdict is not None and verdict.attempt == 2
    row = _row(factory, sid)
    assert (row.status, row.attempts, row.stage, row.lease_expires_at) == (
        S.VERIFIED,
        2,
        None,
        None,
    )
    # max_attempts=2: a run that used both is not claimable again, even from a stale message
    assert _claim(factory, sid, "w3", now=later + timedelta(minutes=5)) is None


def test_racing_claims_have_one_winner(env) -> None:
    _settings, factory, round_id = env
    sid = _create(factory, round_id)
    winners: list[int | None] = []
    barrier = threading.Barrier(6)

    def race(owner: str) -> None:
        barrier.wait()
        winners.append(_claim(factory, sid, owner))

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(winners, key=lambda w: w or 0) == [None] * 5 + [1]


def test_unique_constraint_backs_up_one_verdict_per_attempt(env) -> None:
    _settings, factory, round_id = env
    sid = _create(factory, round_id)
    attempt = _claim(factory, sid, "w1")
    _verdict(factory, sid, "w1", attempt)
    with pytest.raises(IntegrityError), session_scope(factory) as session:
        session.add(Verdict(submission_id=sid, attempt=attempt, passed=False))
        session.flush()


def test_rejected_upload_gets_a_verdict_and_the_users_message(env) -> None:
    _settings, factory, round_id = env
    sid = _create(factory, round_id)
    attempt = _claim(factory, sid, "w1")
    with session_scope(factory) as session:
        leases.record_verdict(
            session=session,
            submission_id=sid,
            owner="w1",
            attempt=attempt,
            outcome=leases.Outcome(passed=True, error="SyntaxError on line 3"),
        )
    row = _row(factory, sid)
    assert (row.status, row.message) == (S.REJECTED, "SyntaxError on line 3")
    with session_scope(factory) as session:
        (verdict,) = submissions.verdicts(session=session, submission_id=sid)
        assert verdict.passed is False


def test_reverify_appends_a_verdict_beside_the_old_one(env) -> None:
    _settings, factory, round_id = env
    sid = _create(factory, round_id)
    _verdict(factory, sid, "w1", _claim(factory, sid, "w1"))
    with session_scope(factory) as session:
        assert submissions.reverify(session=session, submission_id=sid).status == S.QUEUED
        # already waiting: a second request changes nothing
        assert submissions.reverify(session=session, submission_id=sid).status == S.QUEUED
    assert _claim(factory, sid, "w2") == 2
    _verdict(factory, sid, "w2", 2)
    with session_scope(factory) as session:
        assert [v.attempt for v in submissions.verdicts(session=session, submission_id=sid)] == [
            1,
            2,
        ]
        with pytest.raises(LookupError):
            submissions.reverify(session=session, submission_id=sid + 100)
        assert submissions.reverify_round(session=session, round_id=round_id) == [sid]


def test_sweeper_requeues_expired_leases_then_fails_with_a_message(env) -> None:
    settings, factory, round_id = env
    sid = _create(factory, round_id, user="U1")
    held_back = _create(factory, round_id, user="U1", tag="second")
    now = utcnow()
    lease = timedelta(seconds=settings.lease_seconds + 1)

    assert _claim(factory, sid, "w1", now=now) == 1
    with session_scope(factory) as session:
        assert sweeper.sweep(session=session, now=now).changed == 0  # lease still valid
        result = sweeper.sweep(session=session, now=now + lease)
    assert result.requeued == [sid]
    row = _row(factory, sid)
    assert (row.status, row.stage, row.attempts) == (S.QUEUED, "queued", 1)

    assert _claim(factory, sid, "w2", now=now + lease) == 2
    with session_scope(factory) as session:
        result = sweeper.sweep(session=session, now=now + 3 * lease)
    assert result.failed == [sid]
    row = _row(factory, sid)
    assert row.status == S.FAILED
    assert "stopped 2 times" in row.message and "not in your solution" in row.message
    assert _row(factory, held_back).status == S.QUEUED  # the user's next one moves up

    # an admin re-verifies: the run gets a fresh budget, verdict numbers stay unique
    with session_scope(factory) as session:
        submissions.reverify(session=session, submission_id=sid)
    assert _row(factory, sid).status == S.RECEIVED  # behind the user's queued one
    _verdict(factory, held_back, "w3", _claim(factory, held_back, "w3"))
    assert _claim(factory, sid, "w4") == 1


def test_sweeper_resends_lost_messages_and_promotes_stranded_uploads(env) -> None:
    settings, factory, round_id = env
    sid = _create(factory, round_id, user="U1")
    now = utcnow()
    with session_scope(factory) as session:
        assert sweeper.sweep(session=session, now=now).resent == []
        later = now + timedelta(seconds=settings.requeue_after + 1)
        assert sweeper.sweep(session=session, now=later).resent == [sid]
        # re-sent once per period, not on every sweep
        assert sweeper.sweep(session=session, now=later).resent == []

    # A row left "received" with nothing active for its user (e.g. a crash between the verdict and
    # the promotion) is moved up by the sweeper.
    stranded = _create(factory, round_id, user="U2")
    with session_scope(factory) as session:
        session.execute(
            Submission.__table__.update()
            .where(Submission.id == stranded)
            .values(status=S.RECEIVED.value)
        )
    with session_scope(factory) as session:
        assert sweeper.sweep(session=session).promoted == [stranded]
    assert _row(factory, stranded).status == S.QUEUED
