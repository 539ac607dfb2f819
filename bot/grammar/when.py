"""Times typed by admins ("in 3 days", "monday 17:00", "2026-12-08"), read in the configured zone.

Slack, the console and the CLI all read times here, so they accept the same forms (``WHEN_HELP``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.grammar.errors import GrammarError


def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise GrammarError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from exc


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
        raise GrammarError(f"could not read the time of day {text!r}; e.g. 17:00 or 5pm")
    hour, minute, meridiem = int(match[1]), int(match[2] or 0), match[3]
    if meridiem:
        if not 1 <= hour <= 12:
            raise GrammarError(f"{text!r}: with am/pm the hour is 1 to 12")
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if hour > 23 or minute > 59:
        raise GrammarError(f"{text!r} is not a time of day")
    return time(hour, minute)


def parse_when(text: str, *, tz: str, now: datetime, default_hour: int = 17) -> datetime:
    """A time typed by an admin, read in zone ``tz`` (unless it carries an offset), as UTC.

    Accepts the forms listed in ``WHEN_HELP``; anything else raises ``GrammarError`` saying so.
    """
    if now.tzinfo is None:
        raise ValueError("naive datetime; pass a timezone-aware time (UTC)")
    zone = time_zone(tz)
    raw = text
    text = " ".join(text.strip().lower().replace(",", " ").split())
    if not text:
        raise GrammarError(f"no time given; try {WHEN_HELP}")
    if text == "now":
        return now.astimezone(UTC)
    for read in (_relative, _day_word, _iso, _formatted):
        found = read(text, raw=raw, zone=zone, now=now, default_hour=default_hour)
        if found is not None:
            return found.astimezone(UTC)
    raise GrammarError(f"could not read the time {raw!r}; try {WHEN_HELP}")


def _relative(text: str, *, raw: str, now: datetime, **_: object) -> datetime | None:
    """``in 3 days``, ``in 90 minutes``."""
    match = _RELATIVE.match(text)
    if not match:
        return None
    unit = _UNITS.get(match[2])
    if unit is None:
        raise GrammarError(
            f"unknown unit {match[2]!r} in {raw!r}; use minutes, hours, days or weeks"
        )
    return now + timedelta(**{unit: int(match[1])})


def _day_word(
    text: str, *, zone: ZoneInfo, now: datetime, default_hour: int, **_: object
) -> datetime | None:
    """``today``, ``tomorrow 9:00``, ``monday 17:00``, ``next fri 5pm``."""
    local_now = now.astimezone(zone)
    words = text.split(" ", 1)
    day_word, clock_text = words[0], (words[1] if len(words) > 1 else None)
    if day_word == "next" and clock_text:
        day_word, _, clock_text = clock_text.partition(" ")
        clock_text = clock_text or None
    if day_word in {"today", "tomorrow"}:
        day = local_now.date() + timedelta(days=0 if day_word == "today" else 1)
    elif day_word in _WEEKDAY_NAMES:
        ahead = (_WEEKDAY_NAMES[day_word] - local_now.weekday()) % 7 or 7
        day = local_now.date() + timedelta(days=ahead)
    else:
        return None
    at = _clock(clock_text) if clock_text else time(default_hour)
    return datetime.combine(day, at, tzinfo=zone)


def _iso(text: str, *, zone: ZoneInfo, default_hour: int, **_: object) -> datetime | None:
    """``2026-12-08 17:00``, ``2026-12-08`` (at the default hour), with an optional offset."""
    iso = text.upper().replace("Z", "+00:00") if text[:1].isdigit() else text
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if len(text) == 10:  # a date alone: the default hour
        parsed = parsed.replace(hour=default_hour)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed


def _formatted(text: str, *, zone: ZoneInfo, default_hour: int, **_: object) -> datetime | None:
    """``8 Dec 2026 17:00``, ``December 8 2026`` and the other ``_FORMATS``/``_DATE_FORMATS``."""
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=zone)
        except ValueError:
            continue
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt).replace(hour=default_hour)
        except ValueError:
            continue
        return parsed.replace(tzinfo=zone)
    return None
