"""What Slack should show after a submission changed state, queued through the outbox.

The submission flows (``bot.flows.submission``) call ``submission_updated`` in the transaction of
every state change, and ``upload_refused`` when an upload could not become one. Everything
here is derived from the row, and every post has an idempotency key derived from that state, so
calling it twice (a retried job, a sweeper, a restart) posts nothing new.

Where things go:
- the submitter's DM: one status message, edited as the submission moves (received, queued,
  running: <stage>, verified/failed/rejected). If the upload was a DM file share, the status
  message is a reply in that file's thread; otherwise (modal) it is the thread's parent.
- the verdict (report + plot) in that thread, once per attempt, for the submitter only.
- the round channel: a one-line "@user verified a solution" in the round announcement's thread
  (outbox key ``round:{id}:announce``), once per user and round, only while the round is open.
- the round channel's pinned leaderboard (``leaderboards.refresh_pinned_leaderboard``): refreshed
  when a verdict is recorded (or a submission is rejected or cancelled) while the round is open,
  and after its solutions were posted (a late verdict or a re-verification edits the final
  standings). Between the closing time and the solutions post the close does it instead, so the
  final standings never appear before the solutions post.
"""

from __future__ import annotations

import base64
import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import outbox
from bot.posts import leaderboards
from bot.views.puzzle import build_error_message
from bot.views.submissions import (
    build_channel_verified_line,
    build_failure_message,
    build_status_message,
    build_verdict_message,
)
from storage.models import Round, RoundStatus, Submission, SubmissionStatus, utcnow

log = logging.getLogger(__name__)


def status_key(submission_id: int) -> str:
    return f"submission:{submission_id}:status"


def verdict_key(submission_id: int, attempt: int) -> str:
    return f"submission:{submission_id}:verdict:{attempt}"


def round_announce_key(round_id: int) -> str:
    """The schedule's round announcement; channel one-liners thread under it."""
    return f"round:{round_id}:announce"


def dm_channel(submission: Submission) -> str:
    # Posting to a user id delivers to the bot's DM with that user (no conversations.open needed).
    return submission.dm_channel or submission.user_id


def submission_updated(
    *, session: Session, submission_id: int, now: datetime | None = None
) -> None:
    """Queue the posts this submission's current state calls for (idempotent)."""
    submission = session.get(Submission, submission_id)
    if submission is None:
        return
    now = now or utcnow()
    channel = dm_channel(submission)
    status = SubmissionStatus(submission.status)
    _status_posts(session=session, submission=submission, channel=channel)

    if status == SubmissionStatus.VERIFIED and submission.verdicts:
        verdict = submission.verdicts[-1]
        thread = _thread_kwargs(submission)
        key = verdict_key(submission.id, verdict.attempt)
        body = build_verdict_message(submission, verdict)
        outbox.enqueue(
            session=session,
            key=key,
            method="chat_postMessage",
            payload={"channel": channel, **body, **thread["payload"]},
            thread_key=thread["thread_key"],
        )
        if verdict.plot_png:
            outbox.enqueue(
                session=session,
                key=f"{key}:plot",
                method="files_upload_v2",
                payload={
                    "channel": channel,
                    "filename": f"submission-{submission.id}-attempt-{verdict.attempt}.png",
                    "title": f"Submission #{submission.id}: verification plot",
                    "content_b64": base64.b64encode(verdict.plot_png).decode("ascii"),
                    **thread["payload"],
                },
                thread_key=thread["thread_key"],
            )
        if verdict.passed:
            _announce_in_round(session=session, submission=submission, now=now)
    elif status in (SubmissionStatus.FAILED, SubmissionStatus.REJECTED):
        thread = _thread_kwargs(submission)
        outbox.enqueue(
            session=session,
            key=f"submission:{submission.id}:{status.value}:{submission.attempts}",
            method="chat_postMessage",
            payload={"channel": channel, **build_failure_message(submission), **thread["payload"]},
            thread_key=thread["thread_key"],
        )
    if status == SubmissionStatus.VERIFIED and submission.verdicts:
        _refresh_board(session=session, round_id=submission.round_id, now=now)
    elif status in (SubmissionStatus.REJECTED, SubmissionStatus.CANCELLED):
        # It no longer ranks: edit a board already posted, but a bad upload posts none.
        _refresh_board(session=session, round_id=submission.round_id, now=now, create=False)


def _refresh_board(*, session: Session, round_id: int, now: datetime, create: bool = True) -> None:
    """Update the round channel's pinned leaderboard; a problem there never blocks the DM posts."""
    if not create and outbox.get(session=session, key=leaderboards.pinned_key(round_id)) is None:
        return
    try:
        with session.begin_nested():
            # Locked (PostgreSQL): a close in progress finishes first, and we see its status.
            round_ = session.scalars(
                select(Round)
                .where(Round.id == round_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).first()
            if round_ is None:
                return
            open_now = round_.status in (RoundStatus.OPEN, RoundStatus.SCHEDULED) and (
                now < round_.closes_at
            )
            if open_now or round_.status == RoundStatus.SOLUTIONS_POSTED:
                leaderboards.refresh_pinned_leaderboard(session=session, round_id=round_id, now=now)
    except Exception:
        log.exception("pinned leaderboard refresh for round %s failed", round_id)


def _thread_kwargs(submission: Submission) -> dict:
    """Replies go under the user's file message if there is one, else under our status message."""
    if submission.thread_ts:
        return {"payload": {"thread_ts": submission.thread_ts}, "thread_key": None}
    return {"payload": {}, "thread_key": status_key(submission.id)}


def _status_posts(*, session: Session, submission: Submission, channel: str) -> None:
    body = build_status_message(submission)
    first = outbox.get(session=session, key=status_key(submission.id))
    if first is None:
        payload = {"channel": channel, **body}
        if submission.thread_ts:
            payload["thread_ts"] = submission.thread_ts
        outbox.enqueue(
            session=session,
            key=status_key(submission.id),
            method="chat_postMessage",
            payload=payload,
        )
        return
    state = f"{submission.status}:{submission.stage or ''}:{submission.attempts}"
    if first.payload.get("text") == body["text"]:
        return  # the first post already shows this state
    outbox.enqueue(
        session=session,
        key=f"{status_key(submission.id)}:{state}",
        method="chat_update",
        payload={"channel": channel, **body},
        thread_key=status_key(submission.id),
    )


def _announce_in_round(*, session: Session, submission: Submission, now: datetime) -> None:
    round_ = session.get(Round, submission.round_id)
    if round_ is None or round_.status not in (RoundStatus.OPEN, RoundStatus.SCHEDULED):
        return
    if not (round_.opens_at <= now < round_.closes_at):
        return  # after the close, the solutions post speaks instead
    parent = outbox.get(session=session, key=round_announce_key(round_.id))
    outbox.enqueue(
        session=session,
        key=f"round:{round_.id}:verified:{submission.user_id}",
        method="chat_postMessage",
        payload={"channel": round_.channel_id, **build_channel_verified_line(submission.user_id)},
        thread_key=parent.idempotency_key if parent is not None else None,
    )


def submission_updated_safely(*, session: Session, submission_id: int) -> None:
    """``submission_updated`` in a savepoint: a notification error never undoes the state change
    it reports (a verdict must commit even if its post cannot be composed)."""
    try:
        with session.begin_nested():
            submission_updated(session=session, submission_id=submission_id)
    except Exception:
        log.exception("notification for submission %s failed", submission_id)


def upload_refused(
    *,
    session: Session,
    key: str,
    user_id: str,
    text: str,
    channel: str | None = None,
    thread_ts: str | None = None,
) -> None:
    """Tell the user why their file was not accepted, as a message in their DM with the bot.

    Not an ephemeral message: Slack shows those only to a user active in that conversation at
    that moment, and a refusal often comes minutes after the upload. Threaded under the file's
    message when there is one.
    """
    payload: dict = {"channel": channel or user_id, **build_error_message(text)}
    if thread_ts:
        payload["thread_ts"] = thread_ts
    outbox.enqueue(session=session, key=key, method="chat_postMessage", payload=payload)


__all__ = [
    "round_announce_key",
    "status_key",
    "submission_updated",
    "submission_updated_safely",
    "upload_refused",
    "verdict_key",
]
