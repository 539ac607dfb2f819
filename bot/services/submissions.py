"""Submissions: upload -> blob -> row -> queue, fair queuing, leases, verdicts and the sweeper.

The row is the truth and the queue only transport. Every state change is a conditional UPDATE, so
two workers (or a worker and the sweeper) racing for one submission cannot both win:

- ``claim`` moves queued (or running with an expired lease) to running with a fresh lease
  (owner, expiry) and the next attempt number; ``renew_lease``, ``set_stage``, ``record_verdict``
  and ``fail`` only act while the caller still holds that lease.
- Fair queuing: a user has at most one queued/running submission; the rest wait as ``received``
  and ``promote_next`` moves the oldest one up when the active one finishes.
- ``sweep`` (run periodically by the scheduler) re-queues running rows whose lease expired,
  re-sends queued rows whose message was lost, promotes stranded ``received`` rows, and fails a
  run after ``max_attempts`` with a message for the user.

Publishing to the broker happens after the session commits (a worker must never receive a job
whose row it cannot see yet): functions here record what to publish in ``session.info`` and a
``Session`` ``after_commit`` hook sends it; a failed publish leaves the row queued for the sweeper.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, event, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from bot.services import timings
from bot.settings import Settings, get_settings
from storage.models import (
    Blob,
    Round,
    RoundStatus,
    SlackUser,
    Submission,
    SubmissionStatus,
    Verdict,
    utcnow,
)

log = logging.getLogger(__name__)

S = SubmissionStatus
ACTIVE = (S.QUEUED, S.RUNNING)
FINAL = (S.VERIFIED, S.FAILED, S.REJECTED, S.CANCELLED)
NOT_COUNTED = (S.FAILED, S.CANCELLED)
"""Runs the system failed or cancelled do not use up the user's daily allowance."""
ALLOWED_SUFFIXES = (".py", ".ipynb")
DAY = timedelta(hours=24)


class SubmissionRejected(Exception):
    """An upload was refused (nothing was stored); the message is shown to the user as is."""


class DailyLimitReached(SubmissionRejected):
    def __init__(self, limit: int, next_slot: datetime) -> None:
        self.limit = limit
        self.next_slot = next_slot
        super().__init__(
            f"You have used all {limit} submissions allowed in 24 hours. "
            f"You can submit again after {next_slot:%Y-%m-%d %H:%M} UTC."
        )


class RoundNotOpen(SubmissionRejected):
    pass


class UploadRefused(SubmissionRejected):
    pass


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


@dataclass
class SweepResult:
    requeued: list[int] = field(default_factory=list)  # lease expired: the worker died
    resent: list[int] = field(default_factory=list)  # queued too long: the message was lost
    failed: list[int] = field(default_factory=list)  # attempts exhausted
    promoted: list[int] = field(default_factory=list)  # received with nothing active for the user

    @property
    def changed(self) -> int:
        return len(self.requeued) + len(self.resent) + len(self.failed) + len(self.promoted)


# -- publishing after commit -----------------------------------------------------------------

_PENDING = "circuitboard.submissions.pending_enqueue"


def _enqueue_after_commit(session: Session, submission_id: int, queue: str | None) -> None:
    session.info.setdefault(_PENDING, []).append((submission_id, queue or "cpu"))


@event.listens_for(Session, "after_commit")
def _publish_pending(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint was released; the transaction goes on
        return
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    from bot.queue import enqueue_verification

    for submission_id, queue in pending:
        try:
            enqueue_verification(submission_id=submission_id, queue=queue)
        except Exception:  # the broker is down or SQLite was locked: the row says "queued"
            log.warning(
                "could not publish submission %s; the sweeper will re-send it",
                submission_id,
                exc_info=True,
            )


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_PENDING, None)


# -- reading --------------------------------------------------------------------------------


def get(*, session: Session, submission_id: int) -> Submission | None:
    return session.get(Submission, submission_id)


def recent(
    *,
    session: Session,
    round_id: int | None = None,
    user_id: str | None = None,
    status: SubmissionStatus | None = None,
    limit: int = 50,
) -> list[Submission]:
    """Newest first."""
    query = select(Submission).order_by(Submission.created_at.desc(), Submission.id.desc())
    if round_id is not None:
        query = query.where(Submission.round_id == round_id)
    if user_id is not None:
        query = query.where(Submission.user_id == user_id)
    if status is not None:
        query = query.where(Submission.status == status)
    return list(session.scalars(query.limit(limit)))


def verdicts(*, session: Session, submission_id: int) -> list[Verdict]:
    """Every verdict of a submission, oldest attempt first (re-verification appends)."""
    query = select(Verdict).where(Verdict.submission_id == submission_id)
    return list(session.scalars(query.order_by(Verdict.attempt)))


def used_today(*, session: Session, user_id: str, now: datetime) -> list[datetime]:
    """Creation times of the submissions counting toward the user's 24-hour allowance."""
    query = (
        select(Submission.created_at)
        .where(
            Submission.user_id == user_id,
            Submission.created_at > now - DAY,
            Submission.status.not_in(NOT_COUNTED),
        )
        .order_by(Submission.created_at)
    )
    return list(session.scalars(query))


def _last_verdict_attempt(submission_id: Any) -> Any:
    return (
        select(func.coalesce(func.max(Verdict.attempt), 0))
        .where(Verdict.submission_id == submission_id)
        .scalar_subquery()
    )


# -- creating -------------------------------------------------------------------------------


def _queue_for_round(round_: Round, settings: Settings) -> str:
    from bot.queue import CPU_QUEUE, queue_for
    from puzzles.catalog import UnknownPuzzle, get_puzzle

    try:
        puzzle = get_puzzle(round_.puzzle_version.slug)
    except UnknownPuzzle:
        return CPU_QUEUE
    return queue_for(puzzle.verify, settings)


def _lock_user(session: Session, user_id: str) -> None:
    """Serialise one user's submissions on PostgreSQL (SQLite serialises all writers anyway)."""
    if session.get(SlackUser, user_id) is None:
        try:
            with session.begin_nested():
                session.add(SlackUser(id=user_id))
        except IntegrityError:
            pass
    session.execute(select(SlackUser.id).where(SlackUser.id == user_id).with_for_update())


def _store_blob(session: Session, content: bytes, now: datetime) -> str:
    digest = hashlib.sha256(content).hexdigest()
    if session.get(Blob, digest) is None:
        try:
            with session.begin_nested():
                session.add(Blob(sha256=digest, size=len(content), content=content, created_at=now))
        except IntegrityError:  # stored concurrently by another upload of the same bytes
            pass
    return digest


def _check_source(content: bytes, filename: str) -> None:
    """Refuse a file the worker could only reject (not UTF-8, a syntax error, no ``predict`` or
    ``CIRCUIT``) before it is stored or queued, so it costs no sandbox start and no attempt.

    Parsing only (``ast.parse``, nbformat): nothing of the upload runs in this process.
    """
    from puzzles.verify.submission import SubmissionError, load_submission

    try:
        load_submission(content, filename)
    except SubmissionError as exc:
        raise UploadRefused(
            f"`{filename}` was not accepted (it does not count as a submission): {exc}"
        ) from None


def create_submission(
    *,
    session: Session,
    round_id: int,
    user_id: str,
    filename: str,
    content: bytes,
    slack_file_id: str | None = None,
    dm_channel: str | None = None,
    thread_ts: str | None = None,
    writeup_url: str | None = None,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> Submission:
    """Store an upload and queue it (or hold it behind the user's running one).

    Idempotent by ``slack_file_id``: Slack retrying the same file returns the existing row.
    Raises ``SubmissionRejected`` subclasses with a user-facing message; nothing is stored then.
    """
    settings = settings or get_settings()
    now = now or utcnow()
    if slack_file_id is not None:
        existing = session.scalar(
            select(Submission).where(Submission.slack_file_id == slack_file_id)
        )
        if existing is not None:
            return existing

    round_ = session.get(Round, round_id)
    if round_ is None or round_.status != RoundStatus.OPEN:
        raise RoundNotOpen("That round is not open for submissions.")
    if not filename.lower().endswith(ALLOWED_SUFFIXES):
        raise UploadRefused(
            f"Submissions are a .py file or a .ipynb notebook; {filename!r} is neither."
        )
    if not content:
        raise UploadRefused("The uploaded file is empty.")
    if len(content) > settings.max_upload_bytes:
        raise UploadRefused(
            f"The file is {len(content):,} bytes; the limit is {settings.max_upload_bytes:,}. "
            "A solution is code: clear notebook outputs before uploading."
        )
    _check_source(content, filename)

    _lock_user(session, user_id)
    used = used_today(session=session, user_id=user_id, now=now)
    if len(used) >= settings.daily_submission_limit:
        raise DailyLimitReached(settings.daily_submission_limit, used[0] + DAY)

    digest = _store_blob(session, content, now)
    submission = Submission(
        round_id=round_id,
        user_id=user_id,
        filename=filename,
        blob_sha256=digest,
        status=S.RECEIVED,
        stage="received",
        queue=_queue_for_round(round_, settings),
        slack_file_id=slack_file_id,
        dm_channel=dm_channel,
        thread_ts=thread_ts,
        writeup_url=writeup_url,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(submission)
    except IntegrityError:  # the same Slack file raced in through a retry
        existing = session.scalar(
            select(Submission).where(Submission.slack_file_id == slack_file_id)
        )
        if existing is None:
            raise
        return existing
    timings.mark(session=session, submission_id=submission.id, stage=timings.STORED)
    promote_next(session=session, user_id=user_id, now=now, settings=settings)
    return submission


def read_content(*, session: Session, submission: Submission) -> bytes:
    blob = session.get(Blob, submission.blob_sha256)
    if blob is None:  # the foreign key makes this impossible; say so if it happens anyway
        raise LookupError(f"blob {submission.blob_sha256} of submission {submission.id} is missing")
    return blob.content


# -- fair queuing ---------------------------------------------------------------------------


def promote_next(
    *, session: Session, user_id: str, now: datetime | None = None, settings: Settings | None = None
) -> Submission | None:
    """Queue the user's oldest held submission if nothing of theirs is queued or running."""
    now = now or utcnow()
    _lock_user(session, user_id)
    candidate = session.scalar(
        select(Submission.id)
        .where(Submission.user_id == user_id, Submission.status == S.RECEIVED)
        .order_by(Submission.created_at, Submission.id)
        .limit(1)
    )
    if candidate is None:
        return None
    other = aliased(Submission)
    someone_active = exists().where(other.user_id == user_id, other.status.in_(ACTIVE))
    result = session.execute(
        update(Submission)
        .where(Submission.id == candidate, Submission.status == S.RECEIVED, ~someone_active)
        .values(status=S.QUEUED, stage="queued", message=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    submission = session.get(Submission, candidate, populate_existing=True)
    assert submission is not None
    timings.mark(session=session, submission_id=submission.id, stage=timings.QUEUED)
    _enqueue_after_commit(session, submission.id, submission.queue)
    _notify(session, submission.id)
    return submission


# -- the worker's side: lease, progress, verdict --------------------------------------------


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
            Submission.attempts < _last_verdict_attempt(submission_id) + settings.max_attempts,
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


def _finish(
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
    if not _finish(
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
    _promote_after(session, submission_id, now, settings)
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
    done = _finish(
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
        _promote_after(session, submission_id, now, settings)
    return done


def _promote_after(
    session: Session, submission_id: int, now: datetime, settings: Settings | None
) -> Submission | None:
    user_id = session.scalar(select(Submission.user_id).where(Submission.id == submission_id))
    if user_id is None:
        return None
    return promote_next(session=session, user_id=user_id, now=now, settings=settings)


# -- re-verification ------------------------------------------------------------------------


def reverify(
    *,
    session: Session,
    submission_id: int,
    requested_by: str | None = None,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> Submission:
    """Run a finished submission again; its new verdict is appended beside the old ones.

    A submission still waiting or running is left as it is (it is about to get a verdict).
    """
    now = now or utcnow()
    submission = session.get(Submission, submission_id)
    if submission is None:
        raise LookupError(f"no submission #{submission_id}")
    # A new run: attempts restart after the last verdict (numbers of attempts that died without a
    # verdict are free to reuse), so the run gets its full budget and verdict numbers stay unique.
    result = session.execute(
        update(Submission)
        .where(Submission.id == submission_id, Submission.status.in_(FINAL))
        .values(
            status=S.RECEIVED,
            stage="received",
            message=None,
            attempts=_last_verdict_attempt(submission_id),
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        log.info("submission %s re-verification requested by %s", submission_id, requested_by)
        promote_next(session=session, user_id=submission.user_id, now=now, settings=settings)
    session.refresh(submission)
    return submission


def reverify_round(
    *,
    session: Session,
    round_id: int,
    requested_by: str | None = None,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> list[int]:
    """Re-verify every finished, non-cancelled submission of a round (e.g. after an engine fix)."""
    ids = list(
        session.scalars(
            select(Submission.id)
            .where(
                Submission.round_id == round_id,
                Submission.status.in_((S.VERIFIED, S.FAILED, S.REJECTED)),
            )
            .order_by(Submission.created_at, Submission.id)
        )
    )
    for submission_id in ids:
        reverify(
            session=session,
            submission_id=submission_id,
            requested_by=requested_by,
            now=now,
            settings=settings,
        )
    return ids


# -- the sweeper ----------------------------------------------------------------------------


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

    expired = session.execute(
        select(
            Submission.id,
            Submission.lease_owner,
            Submission.attempts,
            _last_verdict_attempt(Submission.id),
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
            if _finish(
                session,
                still_expired,
                status=S.FAILED,
                message=exhausted_message(attempts - floor),
                now=now,
            ):
                result.failed.append(submission_id)
                _notify(session, submission_id)
                _promote_after(session, submission_id, now, settings)
            continue
        requeued = session.execute(
            update(Submission)
            .where(still_expired)
            .values(status=S.QUEUED, stage="queued", lease_expires_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if requeued.rowcount == 1:
            queue = session.scalar(select(Submission.queue).where(Submission.id == submission_id))
            _enqueue_after_commit(session, submission_id, queue)
            result.requeued.append(submission_id)
            _notify(session, submission_id)

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
            _enqueue_after_commit(session, submission_id, queue)
            result.resent.append(submission_id)

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
    if result.changed:
        log.info(
            "sweep: requeued %s, resent %s, failed %s, promoted %s",
            result.requeued,
            result.resent,
            result.failed,
            result.promoted,
        )
    return result


def _notify(session: Session, submission_id: int) -> None:
    """Tell the user about a change made here (in the same transaction, so it commits with it)."""
    try:
        from bot.services import notifications
    except ImportError:  # the Slack side is not installed in this build
        return
    submission_updated = getattr(notifications, "submission_updated", None)
    if submission_updated is None:
        return
    try:
        with session.begin_nested():
            submission_updated(session=session, submission_id=submission_id)
    except Exception:
        log.exception("notification for submission %s failed", submission_id)
