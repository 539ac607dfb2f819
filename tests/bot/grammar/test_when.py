"""Reading the times admins type: every form ``WHEN_HELP`` lists, and refusals that say why."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.scheduler import utc

from bot.grammar import GrammarError
from bot.grammar.when import parse_when

NOW = utc(2026, 11, 25, 12)  # a Wednesday; 13:00 in Berlin
TZ = "Europe/Berlin"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-08 17:00", utc(2026, 12, 8, 16)),
        ("2026-12-08T17:00", utc(2026, 12, 8, 16)),
        ("2026-12-08", utc(2026, 12, 8, 16)),  # a date alone: the default hour
        ("2026-12-08T17:00+00:00", utc(2026, 12, 8, 17)),
        ("2026-12-08 17:00Z", utc(2026, 12, 8, 17)),
        ("8 Dec 2026 17:00", utc(2026, 12, 8, 16)),
        ("December 8 2026", utc(2026, 12, 8, 16)),
        ("in 3 days", NOW + timedelta(days=3)),
        ("in 90 minutes", NOW + timedelta(minutes=90)),
        ("in 2h", NOW + timedelta(hours=2)),
        ("in 1 week", NOW + timedelta(weeks=1)),
        ("now", NOW),
        ("tomorrow 9:00", utc(2026, 11, 26, 8)),
        ("today 5pm", utc(2026, 11, 25, 16)),
        ("monday 17:00", utc(2026, 11, 30, 16)),
        ("next wed", utc(2026, 12, 2, 16)),  # the same weekday means next week
        ("  Friday,  10:30 ", utc(2026, 11, 27, 9, 30)),
        ("2027-07-01 17:00", utc(2027, 7, 1, 15)),  # summer time
    ],
)
def test_parse_when(text, expected) -> None:
    assert parse_when(text, tz=TZ, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "someday", "in 3 fortnights", "tomorrow 25:00", "13pm"])
def test_parse_when_refuses_what_it_cannot_read(text) -> None:
    with pytest.raises(GrammarError) as info:
        parse_when(text, tz=TZ, now=NOW)
    assert (
        "could not read" in str(info.value)
        or "unknown unit" in str(info.value)
        or ("no time given" in str(info.value) or "not a time" in str(info.value))
    )
