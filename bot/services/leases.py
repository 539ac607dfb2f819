"""The worker's side of a submission: lease, progress and verdict.

Every state change is a conditional UPDATE, so two workers (or a worker and the sweeper) racing
for one submission cannot both win: ``claim`` moves queued (or running with an expired lease) to
running with a fresh lease (owner, expiry) and the next attempt number; ``renew_lease``,
``set_stage``, ``record_verdict`` and ``fail`` only act while the caller still holds that lease.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from bot.services import timings
from bot.services.submissions import S, last_verdict_attempt, promote_after
from bot.settings import Settings, get_settings
from storage.models import Submission, SubmissionStatus, Verdict, utcnow


@dataclass(frozen=True)
class Outcome:
    """What one verification attempt produced, in the shape of a verdicts row."""

    passed: bool
    checks_passed: int = 0
    scores: dict[str, Any] = field(default_factory=dict)
    report_md: str = ""
    plot_png: bytes | None = None
    runtime_s: float | None = None
    device: str | None = None
    engine_version: str | None = None
    public_score: float | None = None
    private_score: float | None = None
    error: str | None = None
    """A user-facing reason the upload itself could not be verified (status ``rejected``)."""


def claim(
    *,
    session: Session,
    submission_id: int,
    owner: str,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> int | None:
    """Take the submission for ``owner``; returns the attempt number, or None if not ours to run.

    One conditional UPDATE: queued, or running under a lease that has expired (its worker died and
    the broker redelivered before the sweeper noticed), with attempts left in this run.
    """
    settings = settings or get_settings()
    now = now or utcnow()
    result = session.execute(
        update(Submission)
        .where(
            Submission.id == submission_id,
            or_(
                Submission.status == S.QUEUED,
                and_(
                    Submission.status == S.RUNNING,
                    or_(Submission.lease_expires_at.is_(None), Submission.lease_expires_at < now),
                ),
            ),
            Submission.attempts < last_verdict_attempt(submission_id) + settings.max_attempts,
        )
        .values(
            status=S.RUNNING,
            attempts=Submission.attempts + 1,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=settings.lease_seconds),
            stage="sandbox start",
            message=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    attempt = session.scalar(select(Submission.attempts).where(Submission.id == submission_id))
    timings.mark(
        session=session,
        submission_id=submission_id,
        stage=timings.CLAIMED,
        attempt=attempt or 0,
        at=now,
    )
    return attempt


def _held(submission_id: int, owner: str, attempt: int) -> Any:
    return and_(
        Submission.id == submission_id,
        Submission.status == S.RUNNING,
        Submission.lease_owner == owner,
        Submission.attempts == attempt,
    )


def renew_lease(
    *,
    session: Session,
    submission_id: int,
    owner: str,
    attempt: int,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> bool:
    """Extend the lease; False means it was lost (the sweeper gave the job to someone else)."""
    settings = settings or get_settings()
    now = now or utcnow()
    result = session.execute(
        update(Submission)
        .where(_held(submission_id, owner, attempt))
        .values(lease_expires_at=now + timedelta(seconds=settings.lease_seconds), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def set_stage(
    *,
    session: Session,
    submission_id: int,
    owner: str,
    attempt: int,
    stage: str,
    now: datetime | None = None,
) -> bool:
    """Record live progress; False when the lease is gone or the stage did not change."""
    result = session.execute(
        update(Submission)
        .where(_held(submission_id, owner, attempt), Submission.stage.is_distinct_from(stage))
        .values(stage=stage[:64], updated_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def finish(
    session: Session,
    where: Any,
    *,
    status: SubmissionStatus,
    message: str | None,
    now: datetime,
) -> bool:
    result = session.execute(
        update(Submission)
        .where(where)
        .values(status=status, stage=None, message=message, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def record_verdict(
    *,
    session: Session,
    submission_id: int,
    owner: str,
    attempt: int,
    outcome: Outcome,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> Verdict | None:
    """Store the attempt's verdict and finish the run, if ``owner`` still holds the lease.

    Returns None (and stores nothing) when the lease was lost. The verdicts table's
    UNIQUE(submission_id, attempt) is the backstop: a second verdict for one attempt raises.
    """
    now = now or utcnow()
    status = S.REJECTED if outcome.error else S.VERIFIED
    if not finish(
        session,
        _held(submission_id, owner, attempt),
        status=status,
        message=outcome.error,
        now=now,
    ):
        return None
    verdict = Verdict(
        submission_id=submission_id,
        attempt=attempt,
        passed=outcome.passed and not outcome.error,
        checks_passed=outcome.checks_passed,
        public_score=outcome.public_score,
        private_score=outcome.private_score,
        scores=outcome.scores,
        report_md=outcome.report_md,
        plot_png=outcome.plot_png,
        runtime_s=outcome.runtime_s,
        device=outcome.device,
        engine_version=outcome.engine_version,
        created_at=now,
    )
    session.add(verdict)
    timings.mark(
        session=session,
        submission_id=submission_id,
        stage=timings.VERDICT_RECORDED,
        attempt=attempt,
        at=now,
    )
    session.flush()
    promote_after(session, submission_id, now, settings)
    return verdict


def fail(
    *,
    session: Session,
    submission_id: int,
    owner: str,
    attempt: int,
    message: str,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> bool:
    """End the run as failed (a system problem, e.g. the time limit) if ``owner`` holds the lease."""
    now = now or utcnow()
    done = finish(
        session, _held(submission_id, owner, attempt), status=S.FAILED, message=message, now=now
    )
    if done:
        timings.mark(
            session=session,
            submission_id=submission_id,
            stage=timings.FAILED,
            attempt=attempt,
            at=now,
        )
        promote_after(session, submission_id, now, settings)
    return done
