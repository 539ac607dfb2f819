"""Hints: text released once at its time into the round's channel.

Admins add, edit and cancel hints until their release time; after it, the hint belongs to the
record and changes are refused with a message saying so. The puzzle's hints.md seeds a default
schedule (one hint a week after the opening). ``release`` queues the post through the outbox under
``hint:{id}:release``, so a release that runs twice posts once.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot import outbox
from bot.services import grammar, rounds
from bot.settings import Settings, get_settings
from storage.models import Hint, HintStatus, Round, RoundStatus


class HintError(ValueError):
    """A refused hint operation or an unreadable time; the message is shown to the admin."""


def release_key(hint_id: int) -> str:
    return f"hint:{hint_id}:release"


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


def _next_position(session: Session, round_id: int) -> int:
    return (
        session.scalar(select(func.max(Hint.position)).where(Hint.round_id == round_id)) or 0
    ) + 1


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
        position=_next_position(session, round_.id),
        text=text,
        release_at=release_at,
        status=HintStatus.SCHEDULED,
        created_by=created_by,
    )
    session.add(hint)
    session.flush()
    return hint


def seed_default(
    *,
    session: Session,
    round_id: int,
    interval: timedelta = timedelta(days=7),
    created_by: str | None = None,
) -> list[Hint]:
    """Schedule the puzzle's hints.md, one every ``interval`` after the opening, inside the round."""
    round_ = rounds.require(session=session, round_id=round_id)
    puzzle = rounds.puzzle_for(round_)
    if puzzle is None:
        return []
    position = _next_position(session, round_.id)
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


def release(*, session: Session, hint_id: int, now: datetime) -> str:
    """Queue the hint's post (once: keyed by hint) and mark it released.

    The scheduler calls this when the hint is due; an admin may call it for a missed hint.
    """
    from bot.views.announcements import build_hint_post

    hint = require(session=session, hint_id=hint_id)
    if hint.status == HintStatus.CANCELLED:
        raise HintError(f"hint #{hint.id} is cancelled")
    if hint.round.status == RoundStatus.CANCELLED:
        raise HintError(f"round #{hint.round_id} is cancelled")
    key = release_key(hint.id)
    if hint.status != HintStatus.RELEASED:
        number = len(released(session=session, round_id=hint.round_id)) + 1
        payload = build_hint_post(hint=hint, number=number, round_=hint.round)
        outbox.enqueue(
            session=session,
            key=key,
            method="chat_postMessage",
            payload={"channel": hint.round.channel_id, **payload},
        )
        hint.status = HintStatus.RELEASED
        hint.released_at = now
        session.flush()
    return key


def mark_missed(*, session: Session, hint_id: int) -> Hint:
    hint = require(session=session, hint_id=hint_id)
    if hint.status == HintStatus.SCHEDULED:
        hint.status = HintStatus.MISSED
        session.flush()
    return hint


# --- reading times typed by admins ------------------------------------------------------------

_UNITS = {
    "m": "minutes",
    "min": "minutes",
    "mins": "minutes",
    "minute": "minutes",
    "minutes": "minutes",
    "h": "hours",
    "hr": "hours",
    "hrs": "hours",
    "hour": "hours",
    "hours": "hours",
    "d": "days",
    "day": "days",
    "days": "days",
    "w": "weeks",
    "week": "weeks",
    "weeks": "weeks",
}
_WEEKDAY_NAMES = {
    name: number
    for number, names in enumerate(
        [
            ("mon", "monday"),
            ("tue", "tues", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thur", "thurs", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        ]
    )
    for name in names
}
_RELATIVE = re.compile(r"^in\s+(\d+)\s*([a-z]+)$")
_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$")
_FORMATS = (
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%d %b %Y %H:%M",
    "%d %B %Y %H:%M",
    "%b %d %Y %H:%M",
    "%B %d %Y %H:%M",
)
_DATE_FORMATS = ("%Y-%m-%d", "%d %b %Y", "%d %B %Y", "%b %d %Y", "%B %d %Y")
WHEN_HELP = (
    '"2026-12-08 17:00", "2026-12-08" (at the default hour), "in 3 days", "in 90 minutes", '
    '"tomorrow 9:00", "monday 17:00", "now" (times in the configured zone unless an offset is '
    "given, e.g. 2026-12-08T17:00+01:00)"
)


def _clock(text: str) -> time:
    match = _CLOCK.match(text.strip())
    if not match:
        raise HintError(f"could not read the time of day {text!r}; e.g. 17:00 or 5pm")
    hour, minute, meridiem = int(match[1]), int(match[2] or 0), match[3]
    if meridiem:
        if not 1 <= hour <= 12:
            raise HintError(f"{text!r}: with am/pm the hour is 1 to 12")
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if hour > 23 or minute > 59:
        raise HintError(f"{text!r} is not a time of day")
    return time(hour, minute)


def parse_when(text: str, *, tz: str, now: datetime, default_hour: int = 17) -> datetime:
    """A time typed by an admin, read in zone ``tz`` (unless it carries an offset), as UTC.

    Accepts the forms listed in ``WHEN_HELP``; anything else raises ``HintError`` saying so.
    """
    _require_aware(now)
    zone: ZoneInfo = rounds.zone(tz)
    raw = text
    text = " ".join(text.strip().lower().replace(",", " ").split())
    if not text:
        raise HintError(f"no time given; try {WHEN_HELP}")
    if text == "now":
        return now.astimezone(UTC)
    match = _RELATIVE.match(text)
    if match:
        unit = _UNITS.get(match[2])
        if unit is None:
            raise HintError(
                f"unknown unit {match[2]!r} in {raw!r}; use minutes, hours, days or weeks"
            )
        return (now + timedelta(**{unit: int(match[1])})).astimezone(UTC)
    local_now = now.astimezone(zone)
    words = text.split(" ", 1)
    day_word, clock_text = words[0], (words[1] if len(words) > 1 else None)
    if day_word == "next" and clock_text:
        day_word, _, clock_text = clock_text.partition(" ")
        clock_text = clock_text or None
    day = None
    if day_word in {"today", "tomorrow"}:
        day = local_now.date() + timedelta(days=0 if day_word == "today" else 1)
    elif day_word in _WEEKDAY_NAMES:
        ahead = (_WEEKDAY_NAMES[day_word] - local_now.weekday()) % 7 or 7
        day = local_now.date() + timedelta(days=ahead)
    if day is not None:
        at = _clock(clock_text) if clock_text else time(default_hour)
        return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
    iso = text.upper().replace("Z", "+00:00") if text[:1].isdigit() else text
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        parsed = None
    if parsed is not None:
        if len(text) == 10:  # a date alone: the default hour
            parsed = parsed.replace(hour=default_hour)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
        return parsed.astimezone(UTC)
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=zone).astimezone(UTC)
        except ValueError:
            continue
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt).replace(hour=default_hour)
        except ValueError:
            continue
        return parsed.replace(tzinfo=zone).astimezone(UTC)
    raise HintError(f"could not read the time {raw!r}; try {WHEN_HELP}")


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


# --- `/puzzle admin hint ...` ----------------------------------------------------------------

HINT_USAGE = "Usage: " + grammar.group_usage("admin", "hint") + f". <when>: {WHEN_HELP}"


def _target_round(session: Session, release_at: datetime, now: datetime) -> Round:
    """The round a new hint belongs to: the one open at its release time, else the open one."""
    for candidate in (release_at, now):
        round_ = rounds.current(session=session, now=candidate)
        if round_ is not None:
            return round_
    raise HintError("no round is open at that time; plan one first (`/puzzle admin round plan`)")


def admin_hint_command(
    *,
    session: Session,
    text: str,
    actor_id: str,
    now: datetime,
    settings: Settings | None = None,
) -> str:
    """Run ``/puzzle admin hint <text>`` (the caller checked the admin role); returns the reply.

    Raises ``HintError`` with a message for the admin when the command is refused or unreadable.
    """
    settings = settings or get_settings()
    tz = settings.timezone
    try:
        words = rounds.split_args(text)
    except rounds.RoundError as exc:
        raise HintError(str(exc)) from exc
    if not words or words[0] in {"help", "-h", "--help"}:
        return HINT_USAGE
    verb, rest = words[0], words[1:]

    def when(value: str) -> datetime:
        return parse_when(value, tz=tz, now=now, default_hour=settings.round_open_hour)

    def hint_id_arg() -> int:
        if not rest or not rest[0].lstrip("#").isdigit():
            raise HintError(f"which hint? `hint {verb} <id>` (see `hint list`)")
        return int(rest[0].lstrip("#"))

    if verb == "add":
        if len(rest) < 2:
            raise HintError('say when and what: `hint add "<when>" <text>`. ' + HINT_USAGE)
        release_at = when(rest[0])
        round_ = _target_round(session, release_at, now)
        hint = add(
            session=session,
            round_id=round_.id,
            text=" ".join(rest[1:]),
            release_at=release_at,
            now=now,
            created_by=actor_id,
            settings=settings,
        )
        return "Scheduled " + describe_hint(hint, tz=tz)
    if verb == "list":
        if rest:
            round_ = rounds.require(session=session, round_id=int(rest[0].lstrip("#")))
        else:
            round_ = rounds.current(session=session, now=now) or rounds.upcoming(
                session=session, now=now
            )
            if round_ is None:
                return "No round is open or planned."
        listed = list_hints(session=session, round_id=round_.id)
        if not listed:
            return f"Round #{round_.id} has no hints."
        return "\n".join(describe_hint(h, tz=tz) for h in listed)
    if verb == "edit":
        hint_id = hint_id_arg()
        if len(rest) < 3 or rest[1] not in {"time", "text"}:
            raise HintError('`hint edit <id> time "<when>"` or `hint edit <id> text <new text>`')
        if rest[1] == "time":
            hint = edit(
                session=session,
                hint_id=hint_id,
                now=now,
                release_at=when(rest[2]),
                settings=settings,
            )
        else:
            hint = edit(
                session=session,
                hint_id=hint_id,
                now=now,
                text=" ".join(rest[2:]),
                settings=settings,
            )
        return "Updated " + describe_hint(hint, tz=tz)
    if verb == "cancel":
        hint = cancel(session=session, hint_id=hint_id_arg(), now=now, settings=settings)
        return "Cancelled " + describe_hint(hint, tz=tz)
    if verb == "release":
        hint_id = hint_id_arg()
        hint = require(session=session, hint_id=hint_id)
        if hint.status == HintStatus.SCHEDULED and hint.release_at > now:
            raise HintError(
                f"hint #{hint_id} is scheduled for {rounds.format_time(hint.release_at, tz)}; "
                f'to release it earlier, `hint edit {hint_id} time "now"`'
            )
        release(session=session, hint_id=hint_id, now=now)
        return "Released " + describe_hint(hint, tz=tz)
    raise HintError(f"unknown hint command {verb!r}. " + HINT_USAGE)


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
