"""Credits: "best solution" and "honourable mention" awarded by admins, revocable, audited.

At most one best solution per round unless every best of that round is marked joint. The schema's
partial unique index is the real guard (two admins racing); this module checks first so the
admin gets a clear message, and maps the index's IntegrityError to the same message.

A best solution must explain a mechanism: a submission that declares no variables (no format-v2
``HYPOTHESIS``, hence no causal score: a task rule, a weight copy, any v1 file) cannot be credited
best solution. The award is refused when the named submission, or every verified submission of the
user in the round, has no causal score; an honourable mention stays possible.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from bot.services import admins, users
from bot.settings import get_settings
from storage.models import (
    Credit,
    CreditKind,
    Round,
    Submission,
    SubmissionStatus,
    Verdict,
    utcnow,
)


class CreditError(ValueError):
    """An award or revocation that cannot be done; the message is shown to the admin as is."""


class NotAllowed(PermissionError):
    """The actor is not an admin (the refusal is audited too)."""


KIND_ALIASES = {
    "best": CreditKind.BEST_SOLUTION,
    "best_solution": CreditKind.BEST_SOLUTION,
    "best-solution": CreditKind.BEST_SOLUTION,
    "mention": CreditKind.HONOURABLE_MENTION,
    "honourable": CreditKind.HONOURABLE_MENTION,
    "honorable": CreditKind.HONOURABLE_MENTION,
    "honourable_mention": CreditKind.HONOURABLE_MENTION,
    "honourable-mention": CreditKind.HONOURABLE_MENTION,
    "honorable_mention": CreditKind.HONOURABLE_MENTION,
    "hm": CreditKind.HONOURABLE_MENTION,
}
KIND_LABELS = {
    CreditKind.BEST_SOLUTION: "best solution",
    CreditKind.HONOURABLE_MENTION: "honourable mention",
}


def parse_kind(value: str | CreditKind) -> CreditKind:
    """``best`` / ``mention`` (and their spellings) as a CreditKind; CreditError lists the choices."""
    if isinstance(value, CreditKind):
        return value
    kind = KIND_ALIASES.get(value.strip().lower())
    if kind is None:
        raise CreditError(f"unknown credit kind {value!r}; use `best` or `mention`")
    return kind


def _require_admin(
    session: Session,
    *,
    actor_id: str,
    action: str,
    target: str,
    details: dict[str, Any],
    configured: Iterable[str] | None,
) -> None:
    if configured is None:
        configured = get_settings().admins
    if admins.is_admin(session=session, user_id=actor_id, configured=configured):
        return
    _audit_refusal_after(session, actor_id=actor_id, action=action, target=target, details=details)
    raise NotAllowed("only puzzle admins can award or revoke credits")


def _audit_refusal_after(session: Session, **entry: Any) -> None:
    """Record a refusal in its own transaction once the caller's has ended.

    It must outlive the caller's rollback (the caller rolls back on NotAllowed), and it must not
    be written beside the caller's open transaction: SQLite has one writer at a time, so a second
    session would wait out the busy timeout behind the caller's own lock ("database is locked").
    """
    bind = session.get_bind()

    def write() -> None:
        with Session(bind=bind) as audit_session, audit_session.begin():
            admins.audit(session=audit_session, allowed=False, **entry)

    if not session.in_transaction():
        write()
        return

    written = False

    def on_end(_session: Session, transaction: SessionTransaction) -> None:
        nonlocal written
        if transaction.parent is None and not written:  # the outermost one, not a savepoint
            written = True
            write()

    event.listen(session, "after_transaction_end", on_end)


def _check_link(link: str | None) -> str | None:
    if link is None or not link.strip():
        return None
    link = link.strip().strip("<>").split("|", 1)[0]  # Slack wraps links as <url|label>
    parsed = urlparse(link)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise CreditError(f"the link must be an http(s) URL, got {link!r}")
    return link


def _unrevoked(session: Session, *, round_id: int) -> list[Credit]:
    return list(
        session.scalars(
            select(Credit)
            .where(Credit.round_id == round_id, Credit.revoked_at.is_(None))
            .order_by(Credit.awarded_at, Credit.id)
        )
    )


def award(
    *,
    session: Session,
    actor_id: str,
    round_id: int,
    user_id: str,
    kind: str | CreditKind,
    note: str = "",
    submission_id: int | None = None,
    link: str | None = None,
    joint: bool = False,
    now: datetime | None = None,
    configured_admins: Iterable[str] | None = None,
) -> Credit:
    """Award a credit for a round; refused (CreditError) if it would be a second best solution.

    Without a ``link``, the submission's write-up URL (if any) is used. ``configured_admins``:
    the caller's admins from settings (default: the process's settings).
    """
    now = now or utcnow()
    kind = parse_kind(kind)
    target = f"round:{round_id}:user:{user_id}"
    details: dict[str, Any] = {
        "kind": kind.value,
        "note": note,
        "joint": joint,
        "submission_id": submission_id,
        "link": link,
    }
    _require_admin(
        session,
        actor_id=actor_id,
        action="credit.award",
        target=target,
        details=details,
        configured=configured_admins,
    )
    link = _check_target(
        session, round_id=round_id, user_id=user_id, submission_id=submission_id, link=link
    )
    _check_unique(session, round_id=round_id, user_id=user_id, kind=kind, joint=joint)
    if kind == CreditKind.BEST_SOLUTION:
        _require_hypothesis(
            session, round_id=round_id, user_id=user_id, submission_id=submission_id
        )

    credit = Credit(
        round_id=round_id,
        user_id=user_id,
        kind=kind,
        joint=joint,
        note=note,
        submission_id=submission_id,
        link=link,
        awarded_by=actor_id,
        awarded_at=now,
    )
    try:
        with session.begin_nested():
            session.add(credit)
    except IntegrityError as exc:
        if "uq_credits_one_best_per_round" in str(exc.orig) or "credits.round_id" in str(exc.orig):
            raise _second_best(round_id, _unrevoked(session, round_id=round_id)) from exc
        raise
    details["link"] = link
    details["credit_id"] = credit.id
    admins.audit(
        session=session,
        actor_id=actor_id,
        action="credit.award",
        target=target,
        allowed=True,
        details=details,
    )
    return credit


def _check_target(
    session: Session, *, round_id: int, user_id: str, submission_id: int | None, link: str | None
) -> str | None:
    """The round and the named submission exist and are the user's; returns the link to keep
    (the one given, else the submission's write-up)."""
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise CreditError(f"no round with id {round_id}")
    link = _check_link(link)
    if submission_id is not None:
        submission = session.get(Submission, submission_id)
        if submission is None or submission.round_id != round_id or submission.user_id != user_id:
            raise CreditError(
                f"submission {submission_id} is not <@{user_id}>'s submission for round {round_id}"
            )
        link = link or submission.writeup_url
    users.ensure(session=session, user_id=user_id)
    return link


def _check_unique(
    session: Session, *, round_id: int, user_id: str, kind: CreditKind, joint: bool
) -> None:
    """One credit of a kind per user and round; one best solution per round unless all joint."""
    existing = _unrevoked(session, round_id=round_id)
    if any(c.user_id == user_id and c.kind == kind for c in existing):
        raise CreditError(f"<@{user_id}> already holds a {KIND_LABELS[kind]} for round {round_id}")
    bests = [c for c in existing if c.kind == CreditKind.BEST_SOLUTION]
    if kind == CreditKind.BEST_SOLUTION and bests and not (joint and all(c.joint for c in bests)):
        raise _second_best(round_id, bests)


# Cancelled and rejected submissions never rank, so they cannot make a user eligible either.
_NEVER_RANK = (SubmissionStatus.CANCELLED, SubmissionStatus.REJECTED)


def causal_score(verdict: Verdict | None) -> float | None:
    """The verdict's causal score (format v2); None when the submission declared no variables."""
    stored = (verdict.scores or {}) if verdict is not None else {}
    value = (stored.get("scores") or {}).get("causal")
    return float(value) if isinstance(value, int | float) else None


def _newest_verdict(submission: Submission) -> Verdict | None:
    return max(submission.verdicts, key=lambda v: v.attempt, default=None)


def _require_hypothesis(
    session: Session, *, round_id: int, user_id: str, submission_id: int | None
) -> None:
    """Refuse a best solution whose submissions declare no variables (no causal score).

    A named submission must have a verdict; a user with no verified submission in the round and
    none named (a write-up judged on its own) is not refused.
    """
    if submission_id is not None:
        candidates = [session.get(Submission, submission_id)]
    else:
        candidates = list(
            session.scalars(
                select(Submission).where(
                    Submission.round_id == round_id,
                    Submission.user_id == user_id,
                    Submission.status.not_in(_NEVER_RANK),
                )
            )
        )
    verdicts = [v for v in (_newest_verdict(s) for s in candidates if s) if v is not None]
    if submission_id is not None and not verdicts:
        raise CreditError(
            f"submission {submission_id} has no verdict yet, so no causal score: verify it first"
        )
    if not verdicts or any(causal_score(v) is not None for v in verdicts):
        return
    which = (
        f"submission {submission_id} declares"
        if submission_id is not None
        else f"<@{user_id}>'s verified submissions for round {round_id} declare"
    )
    raise CreditError(
        f"{which} no variables (no HYPOTHESIS, or one that could not be checked: no causal "
        "score): a task rule, a copy of the weights or any v1 file cannot be the best solution. "
        "Award an honourable mention, or ask for a format-v2 hypothesis and verify it."
    )


def _second_best(round_id: int, existing: list[Credit]) -> CreditError:
    holders = (
        ", ".join(f"<@{c.user_id}>" for c in existing if c.kind == CreditKind.BEST_SOLUTION)
        or "someone else"
    )
    return CreditError(
        f"round {round_id} already has a best solution ({holders}). Revoke it first, or award "
        "joint best solutions (every best of the round must then be marked joint)."
    )


def revoke(
    *,
    session: Session,
    actor_id: str,
    credit_id: int,
    reason: str = "",
    now: datetime | None = None,
    configured_admins: Iterable[str] | None = None,
) -> Credit:
    """Revoke a credit; the row stays for the record, the leaderboards stop counting it."""
    now = now or utcnow()
    target = f"credit:{credit_id}"
    details: dict[str, Any] = {"reason": reason}
    _require_admin(
        session,
        actor_id=actor_id,
        action="credit.revoke",
        target=target,
        details=details,
        configured=configured_admins,
    )
    credit = session.get(Credit, credit_id)
    if credit is None:
        raise CreditError(f"no credit with id {credit_id}")
    if credit.revoked_at is not None:
        raise CreditError(f"credit {credit_id} was already revoked by <@{credit.revoked_by}>")
    credit.revoked_at = now
    credit.revoked_by = actor_id
    details.update(round_id=credit.round_id, user_id=credit.user_id, kind=credit.kind.value)
    admins.audit(
        session=session,
        actor_id=actor_id,
        action="credit.revoke",
        target=target,
        allowed=True,
        details=details,
    )
    return credit


def for_round(*, session: Session, round_id: int, include_revoked: bool = False) -> list[Credit]:
    """A round's credits, best solutions first, then in award order."""
    query = select(Credit).where(Credit.round_id == round_id)
    if not include_revoked:
        query = query.where(Credit.revoked_at.is_(None))
    credits = list(session.scalars(query.order_by(Credit.awarded_at, Credit.id)))
    return sorted(credits, key=lambda c: c.kind != CreditKind.BEST_SOLUTION)


def for_user(*, session: Session, user_id: str, include_revoked: bool = False) -> list[Credit]:
    query = select(Credit).where(Credit.user_id == user_id)
    if not include_revoked:
        query = query.where(Credit.revoked_at.is_(None))
    return list(session.scalars(query.order_by(Credit.awarded_at, Credit.id)))


__all__ = [
    "KIND_LABELS",
    "CreditError",
    "NotAllowed",
    "award",
    "for_round",
    "for_user",
    "parse_kind",
    "revoke",
]
