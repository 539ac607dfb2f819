"""A submission's path, one explicit step per hop: store -> publish after commit -> verify ->
record -> notify.

Services change the rows and write down what changed (``submissions.take_changes``); a flow
queues the users' posts in the same transaction (``bot.posts.submissions``) and publishes the
jobs it queued only after the commit, so a worker never receives a job whose row it cannot see.
A crash between the commit and the publish loses nothing: the row says ``queued`` and the
sweeper (``sweep`` here, run by the scheduler) re-sends it after ``requeue_after``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from bot import queue
from bot.posts import submissions as posts
from bot.services import leases, submissions, sweeper, timings
from bot.settings import Settings
from storage.db import session_scope
from storage.models import SubmissionStatus

log = logging.getLogger(__name__)


def settle(session: Session) -> list[tuple[int, str]]:
    """Queue the posts for every submission changed in this transaction (before its commit);
    returns the jobs to ``publish`` once it committed."""
    changes = submissions.take_changes(session)
    for submission_id in changes.updated:
        posts.submission_updated_safely(session=session, submission_id=submission_id)
    return changes.queued


def publish(queued: list[tuple[int, str]], settings: Settings | None = None) -> None:
    """Send each committed, queued submission to the broker.

    A refused publish (broker down, SQLite locked) leaves the row queued: the sweeper re-sends it.
    """
    for submission_id, queue_name in queued:
        try:
            queue.enqueue_verification(
                submission_id=submission_id, queue=queue_name, settings=settings
            )
        except Exception:
            log.warning(
                "could not publish submission %s; the sweeper will re-send it",
                submission_id,
                exc_info=True,
            )


@contextmanager
def unit_of_work(
    session_factory: sessionmaker[Session], settings: Settings | None = None
) -> Iterator[Session]:
    """One transaction that may change submissions (an admin command, a re-verification):
    settled before its commit, its jobs published after it."""
    with session_scope(session_factory) as session:
        yield session
        queued = settle(session)
    publish(queued, settings)


def reverify(
    *,
    session_factory: sessionmaker[Session],
    submission_id: int,
    requested_by: str | None = None,
    settings: Settings | None = None,
) -> SubmissionStatus:
    """Run a finished submission again; returns its status now (raises ``LookupError``)."""
    with unit_of_work(session_factory, settings) as session:
        row = submissions.reverify(
            session=session,
            submission_id=submission_id,
            requested_by=requested_by,
            settings=settings,
        )
        return SubmissionStatus(row.status)


def reverify_round(
    *,
    session_factory: sessionmaker[Session],
    round_id: int,
    requested_by: str | None = None,
    settings: Settings | None = None,
) -> list[int]:
    """Re-verify every finished, non-cancelled submission of a round."""
    with unit_of_work(session_factory, settings) as session:
        return submissions.reverify_round(
            session=session, round_id=round_id, requested_by=requested_by, settings=settings
        )


def sweep(
    *,
    session_factory: sessionmaker[Session],
    now: datetime | None = None,
    settings: Settings | None = None,
) -> sweeper.SweepResult:
    """Recover the jobs the queue lost (the scheduler runs it every ``lease_seconds / 2``)."""
    with unit_of_work(session_factory, settings) as session:
        return sweeper.sweep(session=session, now=now, settings=settings)


# -- the worker's steps (``bot.worker.verification`` runs them around the engine) --------------


def start_run(
    *,
    session_factory: sessionmaker[Session],
    submission_id: int,
    owner: str,
    settings: Settings,
    enqueued_at: datetime | None = None,
) -> int | None:
    """Claim the job for ``owner``; the attempt number, or None when it is not ours to run.

    The user sees "running" with the claim, not one transaction later.
    """
    with session_scope(session_factory) as session:
        attempt = leases.claim(
            session=session, submission_id=submission_id, owner=owner, settings=settings
        )
        if attempt is None:
            return None
        if enqueued_at is not None:
            timings.mark(
                session=session,
                submission_id=submission_id,
                stage=timings.ENQUEUED,
                attempt=attempt,
                at=enqueued_at,
            )
        submissions.note_updated(session, submission_id)
        queued = settle(session)
    publish(queued, settings)
    return attempt


def record_stage(
    *,
    session_factory: sessionmaker[Session],
    submission_id: int,
    owner: str,
    attempt: int,
    stage: str,
    shown: bool = True,
) -> bool:
    """Time an engine stage and, when ``shown`` and new, show it in the user's status message
    (the edit commits with the stage it shows). True when the status changed."""
    with session_scope(session_factory) as session:
        timings.mark(session=session, submission_id=submission_id, stage=stage, attempt=attempt)
        if not shown:
            return False
        changed = leases.set_stage(
            session=session, submission_id=submission_id, owner=owner, attempt=attempt, stage=stage
        )
        if changed:
            posts.submission_updated_safely(session=session, submission_id=submission_id)
        return changed


def fail_run(
    *,
    session_factory: sessionmaker[Session],
    submission_id: int,
    owner: str,
    attempt: int,
    message: str,
    settings: Settings,
) -> bool:
    """End the run as failed (our side's problem) while ``owner`` holds the lease; the failure
    posts commit with it, and the user's next held submission is queued and published."""
    with session_scope(session_factory) as session:
        done = leases.fail(
            session=session,
            submission_id=submission_id,
            owner=owner,
            attempt=attempt,
            message=message,
            settings=settings,
        )
        if done:
            submissions.note_updated(session, submission_id)
        queued = settle(session)
    publish(queued, settings)
    return done


def record_outcome(
    *,
    session_factory: sessionmaker[Session],
    submission_id: int,
    owner: str,
    attempt: int,
    outcome: leases.Outcome,
    settings: Settings,
) -> bool:
    """Record the attempt's verdict while ``owner`` holds the lease, its posts in the same
    transaction (a worker killed after the commit leaves no verdict untold); False when the lease
    was lost and nothing was stored."""
    with session_scope(session_factory) as session:
        verdict = leases.record_verdict(
            session=session,
            submission_id=submission_id,
            owner=owner,
            attempt=attempt,
            outcome=outcome,
            settings=settings,
        )
        if verdict is not None:
            submissions.note_updated(session, submission_id)
        queued = settle(session)
    publish(queued, settings)
    return verdict is not None
