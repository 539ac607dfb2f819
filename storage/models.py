"""Tables for every aggregate in the design (section 2), with the rules that protect data in the schema.

Unique keys, foreign keys and check constraints live here rather than only in code, so a bug in a
service (or two bot instances racing) cannot create a second verdict for one attempt, a second post
for one idempotency key, or a submission for a round that does not exist.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    """Enum stored as its values, with a CHECK on SQLite and a native type on PostgreSQL."""
    return Enum(
        cls,
        name=name,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
        create_constraint=True,
    )


class RoundStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    OPEN = "open"
    CLOSED = "closed"
    SOLUTIONS_POSTED = "solutions_posted"
    CANCELLED = "cancelled"


class HintStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    RELEASED = "released"
    CANCELLED = "cancelled"
    MISSED = "missed"  # its time passed beyond the grace window while the bot was down


class SubmissionStatus(enum.StrEnum):
    RECEIVED = "received"  # stored, waiting for its turn (fair queuing holds bursts here)
    QUEUED = "queued"
    RUNNING = "running"
    VERIFIED = "verified"  # a verdict was recorded (it may say the solution failed its checks)
    FAILED = "failed"  # the system could not produce a verdict (attempts exhausted, time limit)
    REJECTED = "rejected"  # bad input: not a .py/.ipynb, too large, not UTF-8, syntax error
    CANCELLED = "cancelled"


class CreditKind(enum.StrEnum):
    BEST_SOLUTION = "best_solution"
    HONOURABLE_MENTION = "honourable_mention"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up after bounded retries; visible to admins


class InboundStatus(enum.StrEnum):
    PENDING = "pending"  # acknowledged to Slack, not yet stored as a submission
    DONE = "done"  # stored (the submission was created in the same transaction)
    REFUSED = "refused"  # not a submission; the user was told why


class SlackUser(Base):
    """Anyone who has interacted with the bot, keyed by their Slack user id."""

    __tablename__ = "slack_users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(255))
    dm_channel: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Admin(Base):
    """A user holding the admin role, granted from settings or by another admin in Slack."""

    __tablename__ = "admins"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("slack_users.id", ondelete="CASCADE"), primary_key=True
    )
    granted_by: Mapped[str | None] = mapped_column(String(32))  # None: from settings
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditLog(Base):
    """Every admin action, allowed or refused, with who tried it."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[str] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    allowed: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PuzzleVersion(Base):
    """A reference to one version of a catalog puzzle, pinned by its weights checksum."""

    __tablename__ = "puzzle_versions"
    __table_args__ = (UniqueConstraint("slug", "version", name="uq_puzzle_versions_slug_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Round(Base):
    """A puzzle run over one month in one channel."""

    __tablename__ = "rounds"
    __table_args__ = (CheckConstraint("closes_at > opens_at", name="closes_after_opens"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    puzzle_version_id: Mapped[int] = mapped_column(
        ForeignKey("puzzle_versions.id", ondelete="RESTRICT"), index=True
    )
    channel_id: Mapped[str] = mapped_column(String(32))
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[RoundStatus] = mapped_column(
        _enum(RoundStatus, "round_status"), default=RoundStatus.SCHEDULED, index=True
    )
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    puzzle_version: Mapped[PuzzleVersion] = relationship()
    hints: Mapped[list[Hint]] = relationship(back_populates="round", order_by="Hint.release_at")


class Hint(Base):
    """A hint released once at its time into the round's channel."""

    __tablename__ = "hints"
    __table_args__ = (UniqueConstraint("round_id", "position", name="uq_hints_round_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    release_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[HintStatus] = mapped_column(
        _enum(HintStatus, "hint_status"), default=HintStatus.SCHEDULED
    )
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    round: Mapped[Round] = relationship(back_populates="hints")


class Blob(Base):
    """Uploaded file content, addressed by its sha256 so a re-upload stores nothing new."""

    __tablename__ = "blobs"
    __table_args__ = (CheckConstraint("length(sha256) = 64", name="sha256_length"),)

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Submission(Base):
    """One uploaded solution and its journey through the queue; the row is the truth, not the queue."""

    __tablename__ = "submissions"
    __table_args__ = (
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        Index("ix_submissions_round_user", "round_id", "user_id"),
        Index("ix_submissions_status_lease", "status", "lease_expires_at"),
        # A round's leaderboard fingerprint (count, newest change, cancellations): index only.
        Index("ix_submissions_round_updated", "round_id", "updated_at", "status"),
        # Who solved each round (all-time board): an index-only scan of the solved submissions.
        Index(
            "ix_submissions_solved",
            "round_id",
            "user_id",
            "status",
            "created_at",
            sqlite_where=text("newest_verdict_passed = 1"),
            postgresql_where=text("newest_verdict_passed"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="RESTRICT"))
    user_id: Mapped[str] = mapped_column(ForeignKey("slack_users.id", ondelete="RESTRICT"))
    filename: Mapped[str] = mapped_column(String(255))
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256", ondelete="RESTRICT"))
    status: Mapped[SubmissionStatus] = mapped_column(
        _enum(SubmissionStatus, "submission_status"), default=SubmissionStatus.RECEIVED
    )
    stage: Mapped[str | None] = mapped_column(String(64))  # live progress shown to the user
    message: Mapped[str | None] = mapped_column(Text)  # user-facing reason for failed/rejected
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queue: Mapped[str | None] = mapped_column(String(32))
    # Slack provenance: one upload is one submission, whatever Slack retries.
    slack_file_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    dm_channel: Mapped[str | None] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    writeup_url: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Whether the newest verdict passed: kept by a database trigger on every verdict insert
    # (migration 0003), so it holds whoever writes verdicts; the all-time board reads it.
    newest_verdict_passed: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )

    round: Mapped[Round] = relationship()
    user: Mapped[SlackUser] = relationship()
    verdicts: Mapped[list[Verdict]] = relationship(
        back_populates="submission", order_by="Verdict.attempt"
    )


class Verdict(Base):
    """The outcome of one verification attempt; re-verification appends, never overwrites."""

    __tablename__ = "verdicts"
    __table_args__ = (
        UniqueConstraint("submission_id", "attempt", name="uq_verdicts_submission_attempt"),
        Index("ix_verdicts_submission_created", "submission_id", "created_at"),
        # All-time leaderboard: only passing verdicts can solve a round.
        Index(
            "ix_verdicts_passed_submission",
            "submission_id",
            "attempt",
            sqlite_where=text("passed = 1"),
            postgresql_where=text("passed"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    checks_passed: Mapped[int] = mapped_column(Integer, default=0)
    public_score: Mapped[float | None] = mapped_column(Float)  # held-out set shown during the round
    private_score: Mapped[float | None] = mapped_column(Float)  # revealed when the round closes
    scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    report_md: Mapped[str] = mapped_column(Text, default="")
    plot_png: Mapped[bytes | None] = mapped_column(LargeBinary)
    runtime_s: Mapped[float | None] = mapped_column(Float)
    device: Mapped[str | None] = mapped_column(String(32))
    engine_version: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    submission: Mapped[Submission] = relationship(back_populates="verdicts")


class SubmissionTiming(Base):
    """When a submission reached a stage on its way to a verdict (acknowledged ones live in
    ``inbound_uploads``, posts in ``outbox_messages``): append-only, so the bot, the worker and
    the dispatcher each add their own marks without racing for one row."""

    __tablename__ = "submission_timings"
    __table_args__ = (Index("ix_submission_timings_submission_at", "submission_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # 0: before the first claim
    stage: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Credit(Base):
    """Recognition awarded by an admin; revocation keeps the row for the record."""

    __tablename__ = "credits"
    __table_args__ = (
        # At most one (non-joint, unrevoked) best solution per round, enforced by the database.
        Index(
            "uq_credits_one_best_per_round",
            "round_id",
            unique=True,
            sqlite_where=text("kind = 'best_solution' AND joint = 0 AND revoked_at IS NULL"),
            postgresql_where=text(
                "kind = 'best_solution' AND joint = false AND revoked_at IS NULL"
            ),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="RESTRICT"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("slack_users.id", ondelete="RESTRICT"))
    kind: Mapped[CreditKind] = mapped_column(_enum(CreditKind, "credit_kind"))
    joint: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    submission_id: Mapped[int | None] = mapped_column(
        ForeignKey("submissions.id", ondelete="SET NULL")
    )
    link: Mapped[str | None] = mapped_column(String(1024))
    awarded_by: Mapped[str] = mapped_column(String(32))
    awarded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_by: Mapped[str | None] = mapped_column(String(32))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxMessage(Base):
    """A Slack call to make exactly once; the idempotency key is what makes retries harmless."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        Index("ix_outbox_messages_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    method: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    thread_key: Mapped[str | None] = mapped_column(
        String(255)
    )  # parent's key: its ts is our thread
    status: Mapped[OutboxStatus] = mapped_column(
        _enum(OutboxStatus, "outbox_status"), default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    slack_channel: Mapped[str | None] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ProcessedEvent(Base):
    """Slack deliveries already handled (event id, or file id), recorded on arrival."""

    __tablename__ = "processed_events"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundUpload(Base):
    """A Slack file we acknowledged, recorded before the ack: the truth until it is a submission.

    Written in one short transaction before Slack gets its 200 (with the event id), so a process
    killed after the ack loses nothing: the row stays ``pending`` and is processed again. The row
    becomes ``done`` in the transaction that creates its submission.
    """

    __tablename__ = "inbound_uploads"
    __table_args__ = (
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        Index("ix_inbound_uploads_status_received", "status", "received_at"),
    )

    file_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32))
    dm_channel: Mapped[str | None] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    file: Mapped[dict[str, Any]] = mapped_column(JSON)  # name, size, url_private_download
    writeup_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[InboundStatus] = mapped_column(
        _enum(InboundStatus, "inbound_status"), default=InboundStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    submission_id: Mapped[int | None] = mapped_column(
        ForeignKey("submissions.id", ondelete="SET NULL")
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
