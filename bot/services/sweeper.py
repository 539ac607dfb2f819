"""The sweeper: recover every job the queue may have lost.

Run periodically by the scheduler: it re-queues running rows whose lease expired, re-sends queued
rows whose message was lost, promotes stranded ``received`` rows, and fails a run after
``max_attempts`` with a message for the user. What it queues is published by the caller's flow
after the commit (``submissions.take_changes``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from bot.services.leases import finish
from bot.services.submissions import (
    ACTIVE,
    S,
    last_verdict_attempt,
    note_queued,
    note_updated,
    promote_after,
    promote_next,
)
from bot.settings import Settings, get_settings
from storage.models import Submission, utcnow

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    requeued: list[int] = field(default_factory=list)  # lease expired: the worker died
    resent: list[int] = field(default_factory=list)  # queued too long: the message was lost
    failed: list[int] = field(default_factory=list)  # attempts exhausted
    promoted: list[int] = field(default_factory=list)  # received with nothing active for the user

    @property
    def changed(self) -> int:
        return len(self.requeued) + len(self.resent) + len(self.failed) + len(self.promoted)


def exhausted_message(attempts: int) -> str:
    return (
        f"Verification could not finish: the worker running it stopped {attempts} times. "
        "That is a problem on our side, not in your solution, and it does not count toward your "
        "daily limit. Upload it again, or ask an admin to re-verify it."
    )


def sweep(
    *, session: Session, now: datetime | None = None, settings: Settings | None = None
) -> SweepResult:
    """Recover every job the queue may have lost; safe to run anywhere, any time, concurrently.

    The scheduler calls this periodically (every ``lease_seconds / 2`` or so). It commits nothing
    itself: messages are published after the caller's commit.
    """
    settings = settings or get_settings()
    now = now or utcnow()
    result = SweepResult()
    _recover_expired(session, now, settings, result)
    _resend_stale(session, now, settings, result)
    _promote_stranded(session, now, settings, result)
    if result.changed:
        log.info(
            "sweep: requeued %s, resent %s, failed %s, promoted %s",
            result.requeued,
            result.resent,
            result.failed,
            result.promoted,
        )
    return result


def _recover_expired(
    session: Session, now: datetime, settings: Settings, result: SweepResult
) -> None:
    """Running rows whose lease expired: queued again, or failed once attempts are spent."""
    expired = session.execute(
        select(
            Submission.id,
            Submission.lease_owner,
            Submission.attempts,
            last_verdict_attempt(Submission.id),
        ).where(
            Submission.status == S.RUNNING,
            or_(Submission.lease_expires_at.is_(None), Submission.lease_expires_at < now),
        )
    ).all()
    for submission_id, owner, attempts, floor in expired:
        still_expired = and_(
            Submission.id == submission_id,
            Submission.status == S.RUNNING,
            Submission.attempts == attempts,
            Submission.lease_owner.is_(None) if owner is None else Submission.lease_owner == owner,
            or_(Submission.lease_expires_at.is_(None), Submission.lease_expires_at < now),
        )
        if attempts - floor >= settings.max_attempts:
            if finish(
                session,
                still_expired,
                status=S.FAILED,
                message=exhausted_message(attempts - floor),
                now=now,
            ):
                result.failed.append(submission_id)
                note_updated(session, submission_id)
                promote_after(session, submission_id, now, settings)
            continue
        requeued = session.execute(
            update(Submission)
            .where(still_expired)
            .values(status=S.QUEUED, stage="queued", lease_expires_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if requeued.rowcount == 1:
            queue = session.scalar(select(Submission.queue).where(Submission.id == submission_id))
            note_queued(session, submission_id, queue)
            result.requeued.append(submission_id)
            note_updated(session, submission_id)


def _resend_stale(session: Session, now: datetime, settings: Settings, result: SweepResult) -> None:
    """Queued rows nobody claimed for ``requeue_after``: their message was lost; send it again."""
    stale_before = now - timedelta(seconds=settings.requeue_after)
    stale = session.execute(
        select(Submission.id, Submission.updated_at, Submission.queue).where(
            Submission.status == S.QUEUED, Submission.updated_at < stale_before
        )
    ).all()
    for submission_id, updated_at, queue in stale:
        touched = session.execute(
            update(Submission)
            .where(
                Submission.id == submission_id,
                Submission.status == S.QUEUED,
                Submission.updated_at == updated_at,
            )
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if touched.rowcount == 1:
            note_queued(session, submission_id, queue)
            result.resent.append(submission_id)


def _promote_stranded(
    session: Session, now: datetime, settings: Settings, result: SweepResult
) -> None:
    """``received`` rows with nothing of their user's queued or running: queue the oldest."""
    other = aliased(Submission)
    stranded_users = session.scalars(
        select(Submission.user_id)
        .where(
            Submission.status == S.RECEIVED,
            ~exists().where(other.user_id == Submission.user_id, other.status.in_(ACTIVE)),
        )
        .distinct()
    ).all()
    for user_id in stranded_users:
        promoted = promote_next(session=session, user_id=user_id, now=now, settings=settings)
        if promoted is not None:
            result.promoted.append(promoted.id)
