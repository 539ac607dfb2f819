"""Hints: text released once at its time into the round's channel.

Admins add, edit and cancel hints until their release time; after it, the hint belongs to the
record and changes are refused with a message saying so. The puzzle's hints.md seeds a default
schedule (one hint a week after the opening, ``rounds.seed_default_hints``). ``flows.hints.release_hint``
queues the post through the outbox under ``hint:{id}:release``, so a release that runs twice posts
once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services import rounds
from bot.settings import Settings, get_settings
from storage.models import Hint, HintStatus, Round


class HintError(ValueError):
    """A refused hint operation; the message is shown to the admin (unreadable times raise
    ``bot.grammar.GrammarError``)."""


def _require_aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("naive datetime; pass a timezone-aware time (UTC)")
    return when


def require(*, session: Session, hint_id: int) -> Hint:
    hint = session.get(Hint, hint_id)
    if hint is None:
        raise HintError(f"there is no hint #{hint_id} (see `hints list`)")
    return hint


def list_hints(*, session: Session, round_id: int, include_cancelled: bool = True) -> list[Hint]:
    query = select(Hint).where(Hint.round_id == round_id).order_by(Hint.release_at, Hint.id)
    if not include_cancelled:
        query = query.where(Hint.status != HintStatus.CANCELLED)
    return list(session.scalars(query))


def released(*, session: Session, round_id: int) -> list[Hint]:
    """The round's released hints in release order (what `/puzzle hints` and App Home show)."""
    return list(
        session.scalars(
            select(Hint)
            .where(Hint.round_id == round_id, Hint.status == HintStatus.RELEASED)
            .order_by(Hint.released_at, Hint.id)
        )
    )


def _check_window(round_: Round, release_at: datetime, tz: str) -> None:
    fmt = rounds.format_time
    if not round_.opens_at <= release_at < round_.closes_at:
        raise HintError(
            f"{fmt(release_at, tz)} is outside round #{round_.id} "
            f"({fmt(round_.opens_at, tz)} to {fmt(round_.closes_at, tz)}); "
            "a hint is released while its round is open"
        )


def _check_editable(hint: Hint, now: datetime, tz: str, action: str) -> None:
    fmt = rounds.format_time
    if hint.status == HintStatus.RELEASED:
        at = hint.released_at or hint.release_at
        raise HintError(
            f"hint #{hint.id} was released at {fmt(at, tz)}; it can no longer be {action}"
        )
    if hint.status == HintStatus.CANCELLED:
        raise HintError(f"hint #{hint.id} is cancelled; it can no longer be {action}")
    if hint.status == HintStatus.MISSED:
        raise HintError(
            f"hint #{hint.id} was due at {fmt(hint.release_at, tz)} and missed while the bot "
            f"was down; it can no longer be {action} (release it now with `hints release {hint.id}`)"
        )
    if hint.release_at <= now:
        raise HintError(
            f"hint #{hint.id} is due since {fmt(hint.release_at, tz)} and is being released; "
            f"it can no longer be {action}"
        )


def add(
    *,
    session: Session,
    round_id: int,
    text: str,
    release_at: datetime,
    now: datetime,
    created_by: str | None = None,
    settings: Settings | None = None,
) -> Hint:
    tz = (settings or get_settings()).timezone
    _require_aware(release_at)
    text = text.strip()
    if not text:
        raise HintError("a hint needs some text")
    round_ = rounds.require(session=session, round_id=round_id)
    if round_.status not in rounds.ACTIVE or round_.closes_at <= now:
        raise HintError(f"round #{round_.id} is {round_.status.value}; it takes no new hints")
    if release_at < now:
        raise HintError(
            f"{rounds.format_time(release_at, tz)} is in the past "
            f"(now: {rounds.format_time(now, tz)})"
        )
    _check_window(round_, release_at, tz)
    hint = Hint(
        round_id=round_.id,
        position=rounds.next_hint_position(session, round_.id),
        text=text,
        release_at=release_at,
        status=HintStatus.SCHEDULED,
        created_by=created_by,
    )
    session.add(hint)
    session.flush()
    return hint


def edit(
    *,
    session: Session,
    hint_id: int,
    now: datetime,
    text: str | None = None,
    release_at: datetime | None = None,
    settings: Settings | None = None,
) -> Hint:
    """Change a scheduled hint's text and/or time; refused once its time has come."""
    tz = (settings or get_settings()).timezone
    hint = require(session=session, hint_id=hint_id)
    _check_editable(hint, now, tz, "edited")
    if text is None and release_at is None:
        raise HintError("give a new time and/or text")
    if text is not None:
        if not text.strip():
            raise HintError("a hint needs some text")
        hint.text = text.strip()
    if release_at is not None:
        _require_aware(release_at)
        if release_at < now:
            raise HintError(f"{rounds.format_time(release_at, tz)} is in the past")
        _check_window(hint.round, release_at, tz)
        hint.release_at = release_at
    session.flush()
    return hint


def cancel(
    *, session: Session, hint_id: int, now: datetime, settings: Settings | None = None
) -> Hint:
    """Cancel a scheduled hint; refused once its time has come."""
    tz = (settings or get_settings()).timezone
    hint = require(session=session, hint_id=hint_id)
    _check_editable(hint, now, tz, "cancelled")
    hint.status = HintStatus.CANCELLED
    session.flush()
    return hint


def mark_released(*, session: Session, hint: Hint, now: datetime) -> Hint:
    """Record that ``hint`` was posted (``flows.hints.release_hint`` queues the post with it)."""
    hint.status = HintStatus.RELEASED
    hint.released_at = now
    session.flush()
    return hint


def mark_missed(*, session: Session, hint_id: int) -> Hint:
    hint = require(session=session, hint_id=hint_id)
    if hint.status == HintStatus.SCHEDULED:
        hint.status = HintStatus.MISSED
        session.flush()
    return hint


def describe_hint(hint: Hint, *, tz: str) -> str:
    fmt = rounds.format_time
    if hint.status == HintStatus.RELEASED:
        state = f"released {fmt(hint.released_at or hint.release_at, tz)}"
    elif hint.status == HintStatus.SCHEDULED:
        state = f"scheduled {fmt(hint.release_at, tz)}"
    else:
        state = f"{hint.status.value} (was due {fmt(hint.release_at, tz)})"
    preview = hint.text if len(hint.text) <= 80 else hint.text[:79] + "…"
    return f"hint #{hint.id} (round #{hint.round_id}): {state}: {preview}"


def save_from_modal(
    *,
    session: Session,
    round_id: int,
    hint_id: int | None,
    release_at: datetime,
    text: str,
    actor_id: str,
    now: datetime,
    settings: Settings | None = None,
) -> Hint:
    """Save the hint-scheduling modal (``views.announcements.read_hint_modal``): add or edit."""
    if hint_id is None:
        return add(
            session=session,
            round_id=round_id,
            text=text,
            release_at=release_at,
            now=now,
            created_by=actor_id,
            settings=settings,
        )
    return edit(
        session=session,
        hint_id=hint_id,
        now=now,
        text=text,
        release_at=release_at,
        settings=settings,
    )
