"""Planning rounds: the default cadence in the configured zone, refusals, the admin command."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.scheduler import CHANNEL, utc

from bot.services import rounds
from bot.services.rounds import RoundError
from storage.db import session_scope
from storage.models import HintStatus, PuzzleVersion, RoundStatus

pytestmark = pytest.mark.usefixtures("catalog")  # the test catalog (conftest)
NOW = utc(2026, 11, 25, 12)


def test_current_is_the_round_open_at_that_time(factory, settings) -> None:
    with session_scope(factory) as s:
        r = rounds.plan(session=s, slug="alpha", channel_id=CHANNEL, now=NOW, settings=settings)
        assert rounds.current(session=s, now=NOW) is None
        assert rounds.current(session=s, now=r.opens_at).id == r.id
        assert rounds.current(session=s, now=r.closes_at - timedelta(seconds=1)).id == r.id
        assert rounds.current(session=s, now=r.closes_at) is None
        assert rounds.upcoming(session=s, now=NOW).id == r.id
        rounds.cancel(session=s, round_id=r.id, now=NOW)
        assert rounds.current(session=s, now=r.opens_at) is None
        with pytest.raises(ValueError, match="naive"):
            rounds.current(session=s, now=NOW.replace(tzinfo=None))


def test_default_cadence_first_of_the_month_at_the_open_hour_in_the_zone(factory, settings) -> None:
    with session_scope(factory) as s:
        dec = rounds.plan(session=s, slug="alpha", channel_id=CHANNEL, now=NOW, settings=settings)
        jan = rounds.plan(session=s, slug="beta", channel_id=CHANNEL, now=NOW, settings=settings)
        # 17:00 in Berlin is 16:00 UTC in winter; each round closes when the next one opens.
        assert dec.opens_at == utc(2026, 12, 1, 16)
        assert dec.closes_at == jan.opens_at == utc(2027, 1, 1, 16)
        assert jan.closes_at == utc(2027, 2, 1, 16)
        # Summer time: 17:00 CEST is 15:00 UTC.
        summer = rounds.plan(
            session=s,
            slug="alpha",
            channel_id=CHANNEL,
            now=NOW,
            opens_at=utc(2027, 6, 1, 15),
            settings=settings,
        )
        assert summer.closes_at == utc(2027, 7, 1, 15)
        # The same puzzle version is referenced, not duplicated.
        versions = s.query(PuzzleVersion).filter_by(slug="alpha").all()
        assert len(versions) == 1 and versions[0].title == "Alpha palindromes"


def test_plan_seeds_a_hint_a_week_from_hints_md(factory, settings) -> None:
    with session_scope(factory) as s:
        r = rounds.plan(session=s, slug="alpha", channel_id=CHANNEL, now=NOW, settings=settings)
        hints = r.hints
        assert [h.text for h in hints] == [
            "Look at head L0H1.",
            "The MLP compares **two** positions.",
            "Mind the middle.",
        ]
        assert [h.release_at - r.opens_at for h in hints] == [
            timedelta(days=d) for d in (7, 14, 21)
        ]
        assert all(h.status == HintStatus.SCHEDULED for h in hints)
        bare = rounds.plan(
            session=s, slug="beta", channel_id=CHANNEL, now=NOW, seed_hints=False, settings=settings
        )
        assert bare.hints == []


def test_plan_refusals_say_why(factory, settings) -> None:
    with session_scope(factory) as s:
        with pytest.raises(RoundError, match="unknown puzzle 'nope'.*alpha, beta"):
            rounds.plan(session=s, slug="nope", channel_id=CHANNEL, now=NOW, settings=settings)
        with pytest.raises(RoundError, match="in the past"):
            rounds.plan(
                session=s,
                slug="alpha",
                channel_id=CHANNEL,
                now=NOW,
                opens_at=utc(2026, 11, 1),
                settings=settings,
            )
        with pytest.raises(RoundError, match="must be after the opening"):
            rounds.plan(
                session=s,
                slug="alpha",
                channel_id=CHANNEL,
                now=NOW,
                opens_at=utc(2026, 12, 5),
                closes_at=utc(2026, 12, 4),
                settings=settings,
            )
        first = rounds.plan(session=s, slug="alpha", channel_id=CHANNEL, now=NOW, settings=settings)
        with pytest.raises(RoundError, match=f"overlap round #{first.id}"):
            rounds.plan(
                session=s,
                slug="beta",
                channel_id="COTHER",
                now=NOW,
                opens_at=utc(2026, 12, 15),
                settings=settings,
            )


def test_reschedule_moves_hints_and_is_refused_once_opened(factory, settings) -> None:
    with session_scope(factory) as s:
        r = rounds.plan(session=s, slug="alpha", channel_id=CHANNEL, now=NOW, settings=settings)
        before = [h.release_at for h in r.hints]
        rounds.reschedule(
            session=s,
            round_id=r.id,
            now=NOW,
            opens_at=r.opens_at + timedelta(days=1),
            closes_at=r.closes_at + timedelta(days=1),
            settings=settings,
        )
        assert [h.release_at for h in r.hints] == [b + timedelta(days=1) for b in before]
        opened = r.opens_at + timedelta(hours=1)
        with pytest.raises(RoundError, match="opened at .*can no longer be moved"):
            rounds.reschedule(
                session=s,
                round_id=r.id,
                now=opened,
                opens_at=r.opens_at + timedelta(days=2),
                settings=settings,
            )
        rounds.reschedule(
            session=s,
            round_id=r.id,
            now=opened,
            closes_at=r.closes_at + timedelta(days=3),
            settings=settings,
        )
        with pytest.raises(RoundError, match="outside the round"):
            rounds.reschedule(
                session=s,
                round_id=r.id,
                now=opened,
                closes_at=r.opens_at + timedelta(days=10),
                settings=settings,
            )


def test_cancel_cancels_scheduled_hints_and_is_refused_after_closing(factory, settings) -> None:
    with session_scope(factory) as s:
        r = rounds.plan(session=s, slug="alpha", channel_id=CHANNEL, now=NOW, settings=settings)
        other = rounds.plan(session=s, slug="beta", channel_id=CHANNEL, now=NOW, settings=settings)
        rounds.cancel(session=s, round_id=r.id, now=NOW)
        assert r.status == RoundStatus.CANCELLED
        assert {h.status for h in r.hints} == {HintStatus.CANCELLED}
        with pytest.raises(RoundError, match="already cancelled"):
            rounds.cancel(session=s, round_id=r.id, now=NOW)
        with pytest.raises(RoundError, match="has closed"):
            rounds.cancel(session=s, round_id=other.id, now=other.closes_at + timedelta(days=1))
        with pytest.raises(RoundError, match="no round #999"):
            rounds.cancel(session=s, round_id=999, now=NOW)
