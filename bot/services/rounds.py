"""Rounds: the puzzle of the month, when it opens and closes, and in which channel.

A round is open when ``opens_at <= now < closes_at`` and it is not cancelled: the times are the
truth, so a round counts as open even if the scheduler has not yet posted its announcement. The
status records what the scheduler has done (announced, closed, solutions posted).

Default cadence: a round opens on the 1st of a month at ``settings.round_open_hour`` in
``settings.timezone`` and closes when the next round opens (the 1st of the following month).
Rounds never overlap, so "the current round" is always one round.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.settings import Settings, get_settings
from puzzles.catalog import Puzzle, UnknownPuzzle, get_puzzle
from storage.models import Hint, HintStatus, PuzzleVersion, Round, RoundStatus

# A round may be planned to open "now": allow this much clock skew between typing and saving.
PAST_TOLERANCE = timedelta(minutes=2)
ACTIVE = (RoundStatus.SCHEDULED, RoundStatus.OPEN)


class RoundError(ValueError):
    """A refused round operation; the message is shown to the admin as is."""


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime; pass a timezone-aware time (UTC)")
    return now


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RoundError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from exc


def format_time(when: datetime, tz: str | ZoneInfo) -> str:
    """``Tue 01 Dec 2026 17:00 CET``: how admins see times (in the configured zone)."""
    local = when.astimezone(zone(tz) if isinstance(tz, str) else tz)
    return local.strftime("%a %d %b %Y %H:%M %Z")


def current(*, session: Session, now: datetime) -> Round | None:
    """The open round at ``now`` (the latest-opened one if several overlap), or None."""
    _require_aware(now)
    return session.scalars(
        select(Round)
        .where(
            Round.status != RoundStatus.CANCELLED,
            Round.opens_at <= now,
            Round.closes_at > now,
        )
        .order_by(Round.opens_at.desc(), Round.id.desc())
        .limit(1)
    ).first()


def upcoming(*, session: Session, now: datetime) -> Round | None:
    """The next round to open after ``now`` (not cancelled), or None."""
    _require_aware(now)
    return session.scalars(
        select(Round)
        .where(Round.status != RoundStatus.CANCELLED, Round.opens_at > now)
        .order_by(Round.opens_at, Round.id)
        .limit(1)
    ).first()


def get(*, session: Session, round_id: int) -> Round | None:
    return session.get(Round, round_id)


def require(*, session: Session, round_id: int) -> Round:
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise RoundError(f"there is no round #{round_id} (see `rounds list`)")
    return round_


def list_rounds(*, session: Session, include_cancelled: bool = True) -> list[Round]:
    query = select(Round).order_by(Round.opens_at, Round.id)
    if not include_cancelled:
        query = query.where(Round.status != RoundStatus.CANCELLED)
    return list(session.scalars(query))


def next_round(*, session: Session, round_: Round) -> Round | None:
    """The round that follows ``round_`` (opens at or after its opening), if one is planned."""
    return session.scalars(
        select(Round)
        .where(
            Round.status != RoundStatus.CANCELLED,
            Round.id != round_.id,
            Round.opens_at >= round_.opens_at,
        )
        .order_by(Round.opens_at, Round.id)
        .limit(1)
    ).first()


def puzzle_for(round_: Round) -> Puzzle | None:
    """The catalog entry of the round's puzzle (None if it left the catalog)."""
    try:
        return get_puzzle(round_.puzzle_version.slug)
    except UnknownPuzzle:
        return None


# --- default cadence -------------------------------------------------------------------------


def month_opening(year: int, month: int, *, tz: str, hour: int) -> datetime:
    """The 1st of ``month`` at ``hour`` local time, in UTC."""
    while month > 12:
        year, month = year + 1, month - 12
    return datetime(year, month, 1, hour, tzinfo=zone(tz)).astimezone(UTC)


def next_opening(after: datetime, *, tz: str, hour: int, strictly: bool = False) -> datetime:
    """The first default opening (1st of a month, ``hour`` local) at or after ``after``."""
    local = after.astimezone(zone(tz))
    candidate = month_opening(local.year, local.month, tz=tz, hour=hour)
    if candidate < after or (strictly and candidate == after):
        candidate = month_opening(local.year, local.month + 1, tz=tz, hour=hour)
    return candidate


# --- planning --------------------------------------------------------------------------------


def ensure_puzzle_version(*, session: Session, slug: str) -> PuzzleVersion:
    """The PuzzleVersion row for the catalog's current version of ``slug`` (created once)."""
    try:
        puzzle = get_puzzle(slug)
    except UnknownPuzzle as exc:
        raise RoundError(str(exc)) from exc
    row = session.scalars(
        select(PuzzleVersion).where(
            PuzzleVersion.slug == puzzle.slug, PuzzleVersion.version == puzzle.version
        )
    ).first()
    if row is None:
        row = PuzzleVersion(
            slug=puzzle.slug,
            version=puzzle.version,
            weights_sha256=puzzle.weights_sha256,
            title=puzzle.title,
        )
        session.add(row)
        session.flush()
    return row


def _describe(round_: Round, tz: str) -> str:
    return (
        f"round #{round_.id} ({round_.puzzle_version.slug}, "
        f"{format_time(round_.opens_at, tz)} to {format_time(round_.closes_at, tz)})"
    )


def _check_no_overlap(
    *, session: Session, opens_at: datetime, closes_at: datetime, tz: str, exclude: int | None
) -> None:
    query = select(Round).where(
        Round.status != RoundStatus.CANCELLED,
        Round.opens_at < closes_at,
        Round.closes_at > opens_at,
    )
    if exclude is not None:
        query = query.where(Round.id != exclude)
    clash = session.scalars(query.order_by(Round.opens_at)).first()
    if clash is not None:
        raise RoundError(
            f"it would overlap {_describe(clash, tz)}; rounds follow each other "
            "(reschedule or cancel that one first)"
        )


def plan(
    *,
    session: Session,
    slug: str,
    channel_id: str,
    now: datetime,
    opens_at: datetime | None = None,
    closes_at: datetime | None = None,
    created_by: str | None = None,
    seed_hints: bool = True,
    settings: Settings | None = None,
) -> Round:
    """Plan a round. Without times it follows the default cadence after the last planned round.

    ``seed_hints`` schedules the puzzle's hints.md one every ``settings.hint_interval_days``.
    """
    settings = settings or get_settings()
    tz, hour = settings.timezone, settings.round_open_hour
    _require_aware(now)
    channel_id = channel_id.strip()
    if not channel_id:
        raise RoundError("a round needs a channel (e.g. --channel C0123456789)")
    puzzle_version = ensure_puzzle_version(session=session, slug=slug)
    if opens_at is None:
        last = session.scalars(
            select(Round)
            .where(Round.status != RoundStatus.CANCELLED)
            .order_by(Round.closes_at.desc())
            .limit(1)
        ).first()
        start = max(now, last.closes_at) if last is not None else now
        opens_at = next_opening(start, tz=tz, hour=hour)
    _require_aware(opens_at)
    if closes_at is None:
        following = session.scalars(
            select(Round)
            .where(Round.status != RoundStatus.CANCELLED, Round.opens_at > opens_at)
            .order_by(Round.opens_at)
            .limit(1)
        ).first()
        closes_at = next_opening(opens_at, tz=tz, hour=hour, strictly=True)
        if following is not None:
            closes_at = min(closes_at, following.opens_at)
    _require_aware(closes_at)
    if opens_at < now - PAST_TOLERANCE:
        raise RoundError(
            f"the opening {format_time(opens_at, tz)} is in the past (now: {format_time(now, tz)}); "
            "use `now` to open a round right away"
        )
    if closes_at <= opens_at:
        raise RoundError(
            f"the closing {format_time(closes_at, tz)} must be after the opening "
            f"{format_time(opens_at, tz)}"
        )
    _check_no_overlap(session=session, opens_at=opens_at, closes_at=closes_at, tz=tz, exclude=None)
    round_ = Round(
        puzzle_version=puzzle_version,
        channel_id=channel_id,
        opens_at=opens_at,
        closes_at=closes_at,
        status=RoundStatus.SCHEDULED,
        created_by=created_by,
    )
    session.add(round_)
    session.flush()
    if seed_hints:
        seed_default_hints(
            session=session,
            round_id=round_.id,
            interval=timedelta(days=settings.hint_interval_days),
            created_by=created_by,
        )
    return round_


def reschedule(
    *,
    session: Session,
    round_id: int,
    now: datetime,
    opens_at: datetime | None = None,
    closes_at: datetime | None = None,
    settings: Settings | None = None,
) -> Round:
    """Move a round's opening (before it opened) and/or closing (before it closed).

    Moving the opening moves its scheduled hints by the same amount, so "a hint a week" stays so.
    """
    settings = settings or get_settings()
    tz = settings.timezone
    _require_aware(now)
    round_ = require(session=session, round_id=round_id)
    if round_.status not in ACTIVE:
        raise RoundError(f"round #{round_id} is {round_.status.value}; it can no longer be moved")
    if opens_at is None and closes_at is None:
        raise RoundError("give a new opening and/or closing time")
    new_opens = round_.opens_at if opens_at is None else _require_aware(opens_at)
    new_closes = round_.closes_at if closes_at is None else _require_aware(closes_at)
    if opens_at is not None and new_opens != round_.opens_at:
        _check_opening_movable(round_, new_opens, now=now, tz=tz)
    if closes_at is not None and new_closes != round_.closes_at:
        _check_closing_movable(round_, new_closes, now=now, tz=tz)
    if new_closes <= new_opens:
        raise RoundError(
            f"the closing {format_time(new_closes, tz)} must be after the opening "
            f"{format_time(new_opens, tz)}"
        )
    _check_no_overlap(
        session=session, opens_at=new_opens, closes_at=new_closes, tz=tz, exclude=round_.id
    )
    _shift_hints(round_, new_opens, new_closes, tz=tz)
    round_.opens_at, round_.closes_at = new_opens, new_closes
    session.flush()
    return round_


def _check_opening_movable(round_: Round, new_opens: datetime, *, now: datetime, tz: str) -> None:
    if round_.opens_at <= now or round_.status != RoundStatus.SCHEDULED:
        raise RoundError(
            f"round #{round_.id} opened at {format_time(round_.opens_at, tz)}; its opening "
            "can no longer be moved (its closing still can)"
        )
    if new_opens < now - PAST_TOLERANCE:
        raise RoundError(f"the new opening {format_time(new_opens, tz)} is in the past")


def _check_closing_movable(round_: Round, new_closes: datetime, *, now: datetime, tz: str) -> None:
    if round_.closes_at <= now:
        raise RoundError(
            f"round #{round_.id} closed at {format_time(round_.closes_at, tz)}; "
            "its closing can no longer be moved"
        )
    if new_closes <= now:
        raise RoundError(f"the new closing {format_time(new_closes, tz)} is in the past")


def _shift_hints(round_: Round, new_opens: datetime, new_closes: datetime, *, tz: str) -> None:
    """Move the round's scheduled hints with its opening; refused if one would leave the round."""
    shift = new_opens - round_.opens_at
    scheduled = [h for h in round_.hints if h.status == HintStatus.SCHEDULED]
    for hint in scheduled:
        moved = hint.release_at + shift
        if not new_opens <= moved < new_closes:
            raise RoundError(
                f"hint #{hint.id} would be released at {format_time(moved, tz)}, outside the "
                "round; edit or cancel it first"
            )
    for hint in scheduled:
        hint.release_at = hint.release_at + shift


def cancel(*, session: Session, round_id: int, now: datetime) -> Round:
    """Cancel a round that has not closed; its scheduled hints are cancelled with it."""
    _require_aware(now)
    round_ = require(session=session, round_id=round_id)
    if round_.status == RoundStatus.CANCELLED:
        raise RoundError(f"round #{round_id} is already cancelled")
    if round_.status not in ACTIVE or round_.closes_at <= now:
        raise RoundError(f"round #{round_id} has closed; it can no longer be cancelled")
    round_.status = RoundStatus.CANCELLED
    for hint in round_.hints:
        if hint.status == HintStatus.SCHEDULED:
            hint.status = HintStatus.CANCELLED
    session.flush()
    return round_


def describe_round(round_: Round, *, tz: str) -> str:
    hints = [h for h in round_.hints if h.status != HintStatus.CANCELLED]
    return (
        f"#{round_.id} *{round_.puzzle_version.title}* (`{round_.puzzle_version.slug}` "
        f"v{round_.puzzle_version.version}) in <#{round_.channel_id}>: "
        f"{format_time(round_.opens_at, tz)} to {format_time(round_.closes_at, tz)}, "
        f"{round_.status.value}, {len(hints)} hint(s)"
    )


# --- the hints a round is planned with ------------------------------------------------------


def next_hint_position(session: Session, round_id: int) -> int:
    """The position the round's next hint takes (after every hint it has, cancelled ones too)."""
    return (
        session.scalar(select(func.max(Hint.position)).where(Hint.round_id == round_id)) or 0
    ) + 1


def seed_default_hints(
    *,
    session: Session,
    round_id: int,
    interval: timedelta = timedelta(days=7),
    created_by: str | None = None,
) -> list[Hint]:
    """Schedule the puzzle's hints.md, one every ``interval`` after the opening, inside the round."""
    round_ = require(session=session, round_id=round_id)
    puzzle = puzzle_for(round_)
    if puzzle is None:
        return []
    position = next_hint_position(session, round_.id)
    created = []
    for number, text in enumerate(puzzle.hints, start=1):
        release_at = round_.opens_at + number * interval
        if release_at >= round_.closes_at:
            break
        hint = Hint(
            round_id=round_.id,
            position=position,
            text=text,
            release_at=release_at,
            status=HintStatus.SCHEDULED,
            created_by=created_by,
        )
        position += 1
        session.add(hint)
        created.append(hint)
    session.flush()
    return created


def open_rounds(session: Session) -> list[tuple[int, str]]:
    """(round id, puzzle slug) of every open round: what a worker warms up for."""
    query = select(Round.id, PuzzleVersion.slug).join(Round.puzzle_version)
    return [
        (rid, slug) for rid, slug in session.execute(query.where(Round.status == RoundStatus.OPEN))
    ]
