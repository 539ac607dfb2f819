"""Storing an upload, the first hop of a submission: record before the ack -> (after it) download
-> store the submission -> publish its job -> the status post in the user's DM.

Nothing acknowledged is lost: ``record`` writes the file to ``inbound_uploads`` in the short
transaction before Slack gets its ack; the download and the submission come after the ack
(``store``, run off the listener's thread), and the row is marked done in the transaction that
creates the submission. A process killed in between leaves the row pending: a starting bot and
the scheduler's sweep (``recover``) store it, a bounded number of times.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from bot.flows.submission import publish, settle
from bot.posts import submissions as posts
from bot.services import submissions, uploads
from bot.services.uploads import Recorded, TransientDownloadError, UploadError, UploadOutcome
from bot.settings import Settings
from storage.db import session_scope
from storage.models import InboundUpload, utcnow

log = logging.getLogger(__name__)


def record(
    *,
    session: Session,
    settings: Settings,
    user_id: str,
    files: list[dict],
    dm_channel: str | None = None,
    thread_ts: str | None = None,
    writeup_url: str | None = None,
    now: datetime | None = None,
    report: bool = True,
) -> list[Recorded]:
    """Record acknowledged files in the caller's transaction, before the ack; a file refused on
    arrival is told (``report``) in that transaction."""
    recorded = uploads.record_inbound(
        session=session,
        settings=settings,
        user_id=user_id,
        files=files,
        dm_channel=dm_channel,
        thread_ts=thread_ts,
        writeup_url=writeup_url,
        now=now,
    )
    if report:
        for item in recorded:
            if item.error is not None:
                _tell(
                    session=session, row=session.get(InboundUpload, item.file_id), text=item.error
                )
    return recorded


def store(
    *,
    session_factory: sessionmaker[Session],
    settings: Settings,
    file_id: str,
    now: datetime | None = None,
    fetch: Callable[[str], bytes] | None = None,
    report: bool = True,
) -> UploadOutcome:
    """Download a recorded file and store it as a submission (marked done in that transaction),
    then publish its job.

    A refusal marks the row refused and (``report``) tells the user, in one transaction. Any
    other failure leaves the row pending for ``recover``; after ``uploads.MAX_ATTEMPTS`` tries
    the user is told to upload the file again.
    """
    now = now or utcnow()
    try:
        with session_scope(session_factory) as session:
            attempt = _begin(session=session, file_id=file_id, now=now, report=report)
        if isinstance(attempt, UploadOutcome):
            return attempt
        file, content = uploads.fetch_content(attempt, settings=settings, fetch=fetch)
        with session_scope(session_factory) as session:
            row = uploads.lock_pending(session=session, file_id=file_id)
            if row is None:
                return uploads.already_handled(session=session, file_id=file_id)
            submission = uploads.store(
                session=session, row=row, attempt=attempt, file=file, content=content
            )
            submissions.note_updated(session, submission.id)
            queued = settle(session)
        publish(queued, settings)
        return UploadOutcome(submission_id=submission.id)
    except UploadError as exc:
        return _refuse_pending(session_factory, file_id, str(exc), report=report)
    except TransientDownloadError as exc:  # Slack or the network, for now: try again later
        log.warning("upload %s not downloaded yet (%s); it will be retried", file_id, exc)
        _note_error(session_factory, file_id, str(exc))
        return UploadOutcome(submission_id=None, pending=True)
    except Exception as exc:  # database or bug: stays pending, retried by recover
        log.exception("upload %s not stored yet; it will be retried", file_id)
        _note_error(session_factory, file_id, f"{type(exc).__name__}: {exc}")
        raise


def _begin(
    *, session: Session, file_id: str, now: datetime, report: bool
) -> uploads.Attempt | UploadOutcome:
    """The attempt's first transaction: count it, or refuse a file tried too often."""
    row = uploads.lock_pending(session=session, file_id=file_id)
    if row is None:
        return uploads.already_handled(session=session, file_id=file_id)
    text = uploads.exhausted(row)
    if text is not None:
        _refuse(session=session, row=row, text=text, report=report)
        return UploadOutcome(submission_id=None, error=text)
    return uploads.begin_attempt(session=session, row=row, now=now)


def _refuse_pending(
    session_factory: sessionmaker[Session], file_id: str, text: str, *, report: bool
) -> UploadOutcome:
    with session_scope(session_factory) as session:
        row = uploads.lock_pending(session=session, file_id=file_id)
        if row is None:
            return uploads.already_handled(session=session, file_id=file_id)
        _refuse(session=session, row=row, text=text, report=report)
    return UploadOutcome(submission_id=None, error=text)


def _note_error(session_factory: sessionmaker[Session], file_id: str, error: str) -> None:
    with contextlib.suppress(Exception), session_scope(session_factory) as session:
        uploads.note_error(session=session, file_id=file_id, error=error)


def recover(
    *,
    session_factory: sessionmaker[Session],
    settings: Settings,
    now: datetime | None = None,
    received_before: datetime | None = None,
    limit: int = 50,
) -> int:
    """Store pending uploads whose processing was lost (a killed or failed process).

    Without ``received_before``: the rows abandoned for ``uploads.STALE_AFTER``. With it (a bot
    starting): every row received before that moment, at once, as no process of ours can be
    working on them any more (if another instance still is, the file is downloaded twice but
    stored once: the row is marked done in the transaction that creates the submission).
    Returns the rows handled.
    """
    if settings.slack_bot_token is None:
        return 0  # nothing could download them here
    now = now or utcnow()
    with session_scope(session_factory) as session:
        file_ids = uploads.abandoned_ids(
            session=session, now=now, received_before=received_before, limit=limit
        )
    handled = 0
    for file_id in file_ids:
        try:
            outcome = store(
                session_factory=session_factory, settings=settings, file_id=file_id, now=now
            )
            handled += not outcome.pending
        except Exception:  # logged by store; the row stays pending
            continue
    if file_ids:
        log.info("recovered %d of %d pending upload(s)", handled, len(file_ids))
    return handled


def receive(
    *,
    session_factory: sessionmaker[Session],
    settings: Settings,
    user_id: str,
    file: dict,
    dm_channel: str | None = None,
    thread_ts: str | None = None,
    writeup_url: str | None = None,
    now: datetime | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> UploadOutcome:
    """Record and store one file in one go (the console; a second call for the same file id does
    nothing). The caller shows ``outcome.error`` itself. ``fetch(url) -> bytes`` replaces the
    Slack download (the console passes the local file)."""
    now = now or utcnow()
    with session_scope(session_factory) as session:
        (recorded,) = record(
            session=session,
            settings=settings,
            user_id=user_id,
            files=[file],
            dm_channel=dm_channel,
            thread_ts=thread_ts,
            writeup_url=writeup_url,
            now=now,
            report=False,
        )
    if recorded.error is not None:
        return UploadOutcome(submission_id=None, error=recorded.error)
    if not recorded.process:
        return UploadOutcome(submission_id=None, duplicate=True)
    return store(
        session_factory=session_factory,
        settings=settings,
        file_id=recorded.file_id,
        now=now,
        fetch=fetch,
        report=False,
    )


def _refuse(*, session: Session, row: InboundUpload, text: str, report: bool) -> None:
    uploads.refuse(row, text)
    if report:
        _tell(session=session, row=row, text=text)


def _tell(*, session: Session, row: InboundUpload | None, text: str) -> None:
    """A reply under the file's message in the DM; a DM message for the submit modal."""
    if row is None:
        return
    posts.upload_refused(
        session=session,
        key=f"file:{row.file_id}:error",
        user_id=row.user_id,
        text=text,
        channel=row.dm_channel,
        thread_ts=row.thread_ts,
    )
