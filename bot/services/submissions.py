"""Submissions: upload -> blob -> row -> queued, fair queuing and re-verification.

The row is the truth and the queue only transport. Fair queuing: a user has at most one
queued/running submission; the rest wait as ``received`` and ``promote_next`` moves the oldest one
up when the active one finishes. The worker's side (leases, verdicts) is in
``bot.services.leases``, the recovery of lost jobs in ``bot.services.sweeper``.

Nothing here publishes or posts: each change is written down in the transaction
(``Changes``), and the caller's flow (``bot.flows.submission``) takes them with
``take_changes``, queues the users' posts in the same transaction and publishes the queued jobs
after the commit (a worker must never receive a job whose row it cannot see yet).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from bot.queue import CPU_QUEUE, queue_for
from bot.services import timings
from bot.settings import Settings, get_settings
from puzzles.catalog import UnknownPuzzle, get_puzzle
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


@dataclass
class Changes:
    """What a transaction did to submissions that someone must hear of."""

    queued: list[tuple[int, str]] = field(default_factory=list)
    """(submission id, queue) moved to queued: publish each after the commit."""
    updated: list[int] = field(default_factory=list)
    """Submissions whose user should be told of their new state (in the same transaction)."""


_CHANGES = "circuitboard.submissions.changes"


def _changes(session: Session) -> Changes:
    changes = session.info.get(_CHANGES)
    if changes is None:
        changes = session.info[_CHANGES] = Changes()
    return changes


def note_queued(session: Session, submission_id: int, queue: str | None) -> None:
    """Record a row moved to queued: its message is published after this transaction commits."""
    _changes(session).queued.append((submission_id, queue or "cpu"))


def note_updated(session: Session, submission_id: int) -> None:
    """Record a row whose user should hear of its new state."""
    updated = _changes(session).updated
    if submission_id not in updated:
        updated.append(submission_id)


def take_changes(session: Session) -> Changes:
    """The changes recorded in this session since the last call (and forget them)."""
    return session.info.pop(_CHANGES, None) or Changes()


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


def last_verdict_attempt(submission_id: Any) -> Any:
    return (
        select(func.coalesce(func.max(Verdict.attempt), 0))
        .where(Verdict.submission_id == submission_id)
        .scalar_subquery()
    )


# -- creating -------------------------------------------------------------------------------


def _queue_for_round(round_: Round, settings: Settings) -> str:
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
    note_queued(session, submission.id, submission.queue)
    note_updated(session, submission.id)
    return submission


def promote_after(
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
            attempts=last_verdict_attempt(submission_id),
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        log.info("submission %s re-verification requested by %s", submission_id, requested_by)
        note_updated(session, submission_id)
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
