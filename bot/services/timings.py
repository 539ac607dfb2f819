"""When a submission reached each stage between its upload and its verdict posts.

Marks are written by whoever reaches the stage, in the transaction that gets there (stored,
queued, claimed, each engine stage, verdict recorded), so they are as durable as the state they
time. Two stages are already recorded elsewhere and are read, not copied: the acknowledgement
(``inbound_uploads.received_at``, committed before Slack gets its ack) and each post
(``outbox_messages.sent_at``, under the submission's ``submission:ID:...`` keys).

An engine stage's mark is when it began; the one before it ended then (``report`` begins once
every check is done).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import (
    InboundUpload,
    OutboxMessage,
    OutboxStatus,
    SubmissionTiming,
    utcnow,
)

ACKNOWLEDGED = "acknowledged"
STORED = "stored"
QUEUED = "queued"
ENQUEUED = "enqueued"
CLAIMED = "claimed"
VERDICT_RECORDED = "verdict recorded"
FAILED = "failed"
POST_PREFIX = "posted "


@dataclass(frozen=True)
class Mark:
    stage: str
    at: datetime
    attempt: int = 0


def mark(
    *,
    session: Session,
    submission_id: int,
    stage: str,
    attempt: int = 0,
    at: datetime | None = None,
) -> None:
    """Record that the submission reached ``stage`` now (in the caller's transaction)."""
    session.add(
        SubmissionTiming(
            submission_id=submission_id, attempt=attempt, stage=stage[:64], at=at or utcnow()
        )
    )


def _post_name(key: str, submission_id: int) -> str:
    """``submission:7:verdict:1:plot`` -> ``verdict:1:plot`` (a status edit is ``status edit``)."""
    rest = key.removeprefix(f"submission:{submission_id}:")
    if rest.startswith("status:"):
        return "status edit"
    return rest


def timeline(*, session: Session, submission_id: int) -> list[Mark]:
    """Every mark of the submission, oldest first: acknowledged, stages, and each post sent."""
    marks: list[Mark] = []
    acked = session.scalar(
        select(InboundUpload.received_at).where(InboundUpload.submission_id == submission_id)
    )
    if acked is not None:
        marks.append(Mark(ACKNOWLEDGED, acked))
    for row in session.scalars(
        select(SubmissionTiming).where(SubmissionTiming.submission_id == submission_id)
    ):
        marks.append(Mark(row.stage, row.at, row.attempt))
    prefix = f"submission:{submission_id}:"
    for key, sent_at in session.execute(
        select(OutboxMessage.idempotency_key, OutboxMessage.sent_at).where(
            OutboxMessage.idempotency_key.startswith(prefix, autoescape=True),
            OutboxMessage.status == OutboxStatus.SENT,
            OutboxMessage.sent_at.is_not(None),
        )
    ):
        marks.append(Mark(POST_PREFIX + _post_name(key, submission_id), sent_at))
    return sorted(marks, key=lambda m: m.at)


def as_json(marks: list[Mark]) -> list[dict[str, Any]]:
    """For the admins' verdict JSON: each mark with its offset from the first, in seconds."""
    if not marks:
        return []
    start = marks[0].at
    return [
        {
            "stage": m.stage,
            "attempt": m.attempt,
            "at": m.at.isoformat(),
            "after_s": round((m.at - start).total_seconds(), 3),
        }
        for m in marks
    ]


def format_lines(marks: list[Mark]) -> list[str]:
    """``+1.234 s  (+0.120)  claimed (attempt 1)``: elapsed since the first mark and the step."""
    if not marks:
        return []
    start = previous = marks[0].at
    lines = []
    for m in marks:
        total = (m.at - start).total_seconds()
        step = (m.at - previous).total_seconds()
        attempt = f" (attempt {m.attempt})" if m.attempt else ""
        lines.append(f"+{total:7.3f} s  (+{step:6.3f})  {m.stage}{attempt}")
        previous = m.at
    return lines


__all__ = ["Mark", "mark", "timeline", "as_json", "format_lines"]
