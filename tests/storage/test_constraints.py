"""The schema itself refuses bad data, on SQLite and PostgreSQL, whatever a service forgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session
from storage_seed import OPENS, Seed, make_blob

from storage.models import (
    Credit,
    CreditKind,
    Hint,
    OutboxMessage,
    PuzzleVersion,
    Round,
    RoundStatus,
    Submission,
    Verdict,
)


def _flush_fails(session: Session, *rows: object, error: type[Exception] = IntegrityError) -> str:
    session.add_all(rows)
    with pytest.raises(error) as info:
        session.flush()
    session.rollback()
    return str(info.value)


def test_duplicate_outbox_idempotency_key_is_rejected(session: Session) -> None:
    session.add(
        OutboxMessage(idempotency_key="round:1:announce", method="chat_postMessage", payload={})
    )
    session.commit()
    again = OutboxMessage(
        idempotency_key="round:1:announce", method="chat_postMessage", payload={"text": "x"}
    )
    _flush_fails(session, again)
    assert session.scalars(select(OutboxMessage)).one().payload == {}


def test_submission_for_an_unknown_round_is_rejected(session: Session, seed: Seed) -> None:
    _flush_fails(session, seed.submission(round_id=seed.round.id + 1000))


def test_submission_for_an_unknown_user_or_blob_is_rejected(session: Session, seed: Seed) -> None:
    _flush_fails(session, seed.submission(user_id="U_NOBODY"))
    _flush_fails(session, seed.submission(blob_sha256="f" * 64))


def test_a_round_with_submissions_cannot_be_deleted(session: Session, seed: Seed) -> None:
    session.add(seed.submission())
    session.commit()
    with pytest.raises(IntegrityError):
        session.execute(text("DELETE FROM rounds WHERE id = :id"), {"id": seed.round.id})
    session.rollback()


def test_one_verdict_per_submission_attempt(session: Session, seed: Seed) -> None:
    submission = seed.submission()
    session.add(submission)
    session.flush()
    session.add(Verdict(submission_id=submission.id, attempt=1, passed=False))
    session.commit()
    _flush_fails(session, Verdict(submission_id=submission.id, attempt=1, passed=True))
    session.add(Verdict(submission_id=submission.id, attempt=2, passed=True))
    session.commit()  # re-verification appends
    assert [v.attempt for v in session.scalars(select(Verdict).order_by(Verdict.attempt))] == [1, 2]


def _best(seed: Seed, **overrides: object) -> Credit:
    values: dict[str, object] = dict(
        round_id=seed.round.id,
        user_id=seed.user.id,
        kind=CreditKind.BEST_SOLUTION,
        awarded_by="UADMIN",
    )
    values.update(overrides)
    return Credit(**values)


def test_one_unrevoked_non_joint_best_solution_per_round(session: Session, seed: Seed) -> None:
    session.add(_best(seed))
    session.commit()
    _flush_fails(session, _best(seed))


def test_joint_revoked_and_mentions_do_not_count_against_the_single_best(
    session: Session, seed: Seed
) -> None:
    session.add(_best(seed))
    session.add(_best(seed, joint=True))
    session.add(_best(seed, joint=True))
    session.add(_best(seed, revoked_at=OPENS, revoked_by="UADMIN"))
    session.add(_best(seed, kind=CreditKind.HONOURABLE_MENTION))
    session.add(_best(seed, kind=CreditKind.HONOURABLE_MENTION))
    session.commit()
    assert len(session.scalars(select(Credit)).all()) == 6


def test_revoking_the_best_solution_frees_the_slot(session: Session, seed: Seed) -> None:
    first = _best(seed)
    session.add(first)
    session.commit()
    first.revoked_at, first.revoked_by = OPENS, "UADMIN"
    session.add(_best(seed, note="the real winner"))
    session.commit()  # the unique index counts unrevoked bests only
    credits = session.scalars(select(Credit).order_by(Credit.id)).all()
    assert [(c.revoked_at is not None, c.note) for c in credits] == [
        (True, first.note),
        (False, "the real winner"),
    ]


def test_another_round_may_have_its_own_best(session: Session, seed: Seed) -> None:
    other = Round(
        puzzle_version_id=seed.round.puzzle_version_id,
        channel_id="C0001",
        opens_at=OPENS + timedelta(days=31),
        closes_at=OPENS + timedelta(days=62),
    )
    session.add_all([_best(seed), other])
    session.flush()
    session.add(_best(seed, round_id=other.id))
    session.commit()  # the single-best rule is per round
    rounds = session.scalars(select(Credit.round_id).order_by(Credit.round_id)).all()
    assert rounds == [seed.round.id, other.id]


def test_bad_enum_value_is_rejected_by_the_orm(session: Session, seed: Seed) -> None:
    seed.round.status = "paused"  # type: ignore[assignment]
    with pytest.raises(StatementError):
        session.flush()
    session.rollback()


def test_bad_enum_value_is_rejected_by_the_database(session: Session, seed: Seed) -> None:
    """Raw SQL bypasses the ORM: the CHECK (SQLite) / native enum (PostgreSQL) still holds."""
    with pytest.raises(DBAPIError):
        session.execute(
            text("UPDATE rounds SET status = 'paused' WHERE id = :id"), {"id": seed.round.id}
        )
    session.rollback()
    assert session.get(Round, seed.round.id).status is RoundStatus.SCHEDULED  # type: ignore[union-attr]


@pytest.mark.parametrize("length", [timedelta(0), timedelta(hours=-1)])
def test_a_round_must_close_after_it_opens(session: Session, seed: Seed, length: timedelta) -> None:
    round_ = Round(
        puzzle_version_id=seed.round.puzzle_version_id,
        channel_id="C0001",
        opens_at=OPENS,
        closes_at=OPENS + length,
    )
    _flush_fails(session, round_)


def test_naive_datetimes_are_refused(session: Session, seed: Seed) -> None:
    naive = datetime(2026, 12, 1, 17, 0)
    message = _flush_fails(
        session,
        Round(
            puzzle_version_id=seed.round.puzzle_version_id,
            channel_id="C0001",
            opens_at=naive,
            closes_at=naive + timedelta(days=1),
        ),
        error=StatementError,
    )
    assert "naive datetime" in message
    with pytest.raises(StatementError, match="naive datetime"):
        session.scalars(select(Round).where(Round.opens_at < naive)).all()
    session.rollback()


def test_duplicate_slack_file_id_is_rejected(session: Session, seed: Seed) -> None:
    session.add_all([seed.submission(slack_file_id="F001"), seed.submission(), seed.submission()])
    session.commit()  # several uploads without a Slack file id (CLI, console) are fine
    _flush_fails(session, seed.submission(slack_file_id="F001"))


def test_hint_position_is_unique_per_round(session: Session, seed: Seed) -> None:
    def hint(round_id: int, position: int) -> Hint:
        return Hint(round_id=round_id, position=position, text="look at L0H1", release_at=OPENS)

    other = Round(
        puzzle_version_id=seed.round.puzzle_version_id,
        channel_id="C0002",
        opens_at=OPENS,
        closes_at=OPENS + timedelta(days=1),
    )
    session.add(other)
    session.flush()
    session.add_all([hint(seed.round.id, 1), hint(seed.round.id, 2), hint(other.id, 1)])
    session.commit()
    _flush_fails(session, hint(seed.round.id, 1))


def test_puzzle_version_is_unique_per_slug(session: Session, seed: Seed) -> None:
    _flush_fails(
        session, PuzzleVersion(slug="modular-add", version=1, weights_sha256="1" * 64, title="Add")
    )


def test_blob_key_must_be_a_sha256(session: Session) -> None:
    blob = make_blob(b"x")
    blob.sha256 = "abc"
    _flush_fails(session, blob)


def test_attempts_cannot_go_negative(session: Session, seed: Seed) -> None:
    _flush_fails(session, seed.submission(attempts=-1))
    _flush_fails(session, OutboxMessage(idempotency_key="k", method="m", payload={}, attempts=-1))


@pytest.mark.parametrize("offset_hours", [0, 2, -7])
def test_times_round_trip_as_aware_utc(sessions, seed: Seed, offset_hours: int) -> None:  # type: ignore[no-untyped-def]
    local = datetime(2027, 1, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=offset_hours)))
    with sessions() as session:
        session.add(seed.submission(lease_expires_at=local))
        session.commit()
    with sessions() as session:
        stored = session.scalars(select(Submission)).one()
        assert stored.lease_expires_at == local
        assert stored.lease_expires_at.tzinfo is UTC  # type: ignore[union-attr]
        assert stored.created_at.tzinfo is UTC
        # Comparisons in SQL use the same instant, whatever zone the parameter was given in.
        assert session.scalars(select(Submission).where(Submission.lease_expires_at == local)).all()
        earlier = local - timedelta(microseconds=1)
        assert session.scalars(
            select(Submission).where(Submission.lease_expires_at > earlier)
        ).all()
        round_ = session.get(Round, seed.round.id)
        assert round_ is not None and round_.opens_at == OPENS and round_.opens_at.tzinfo is UTC


@pytest.mark.postgres
def test_postgres_session_time_zone_does_not_leak(postgres_url: str) -> None:
    """A server or role configured for another zone still hands back UTC."""
    from sqlalchemy.orm import sessionmaker
    from sqlalchemy.pool import NullPool

    from storage.db import make_engine, upgrade_database

    upgrade_database(postgres_url)
    engine = make_engine(
        postgres_url, poolclass=NullPool, connect_args={"options": "-c timezone=Asia/Kolkata"}
    )
    try:
        with sessionmaker(engine)() as session:
            session.add(
                OutboxMessage(idempotency_key="k", method="m", payload={}, next_attempt_at=OPENS)
            )
            session.commit()
            row = session.scalars(select(OutboxMessage)).one()
            session.refresh(row)
            assert row.next_attempt_at == OPENS and row.next_attempt_at.tzinfo is UTC
            shown = session.execute(
                text("SELECT next_attempt_at::text FROM outbox_messages")
            ).scalar()
            assert shown is not None and shown.endswith("+05:30")  # the zone really was Kolkata
    finally:
        engine.dispose()


def _marker(session: Session, submission_id: int) -> bool:
    session.expire_all()
    return bool(
        session.scalar(
            select(Submission.newest_verdict_passed).where(Submission.id == submission_id)
        )
    )


def test_the_newest_verdict_marker_follows_every_verdict_insert(
    session: Session, seed: Seed
) -> None:
    """The all-time board reads the marker; the database keeps it, whoever inserts verdicts."""
    submission = seed.submission()
    session.add(submission)
    session.commit()
    assert _marker(session, submission.id) is False
    for attempt, passed in ((1, True), (2, False), (3, True)):
        session.add(Verdict(submission_id=submission.id, attempt=attempt, passed=passed))
        session.commit()
        assert _marker(session, submission.id) is passed
    # An older attempt committed late does not override the newest one.
    session.add(Verdict(submission_id=submission.id, attempt=5, passed=False))
    session.commit()
    session.add(Verdict(submission_id=submission.id, attempt=4, passed=True))
    session.commit()
    assert _marker(session, submission.id) is False
    # A plain SQL insert (a script, a bulk load) is covered too.
    other = seed.submission(filename="other.py")
    session.add(other)
    session.commit()
    session.execute(
        text(
            "INSERT INTO verdicts (submission_id, attempt, passed, checks_passed, scores,"
            " report_md, created_at) VALUES (:s, 1, :p, 2, '{}', '', CURRENT_TIMESTAMP)"
        ),
        {"s": other.id, "p": True},
    )
    session.commit()
    assert _marker(session, other.id) is True
    assert _marker(session, submission.id) is False
