"""Hints: reading typed times, add/edit/cancel until release time, then refusals that say why."""

from __future__ import annotations

import pytest
from support.cycle_fixtures import PLANNED_AT
from support.scheduler import ADMIN, utc

from bot import scheduler as schedule
from bot.flows import hint_admin
from bot.services import hints, rounds
from bot.services.hints import HintError
from bot.views.announcements import build_hint_modal, read_hint_modal
from storage.db import session_scope
from storage.models import OutboxMessage

pytestmark = pytest.mark.usefixtures("catalog")  # the test catalog (conftest)
NOW = PLANNED_AT  # when the round_id fixture planned the round: a Wednesday, 13:00 in Berlin
TZ = "Europe/Berlin"


def _posted_texts(factory) -> list[str]:
    with session_scope(factory) as s:
        return [m.payload["text"] for m in s.query(OutboxMessage).order_by(OutboxMessage.id)]


def test_edit_and_cancel_before_release_change_what_is_posted(factory, settings, round_id) -> None:
    with session_scope(factory) as s:
        a = hints.add(
            session=s,
            round_id=round_id,
            text="draft",
            release_at=utc(2026, 12, 5, 10),
            now=NOW,
            settings=settings,
        )
        b = hints.add(
            session=s,
            round_id=round_id,
            text="never",
            release_at=utc(2026, 12, 6, 10),
            now=NOW,
            settings=settings,
        )
        hints.edit(
            session=s,
            hint_id=a.id,
            now=NOW,
            text="Look at L1H0.",
            release_at=utc(2026, 12, 7, 10),
            settings=settings,
        )
        hints.cancel(session=s, hint_id=b.id, now=NOW, settings=settings)
    # Before the new time nothing is posted; after it, the edited text; the cancelled one never.
    schedule.run_cycle(session_factory=factory, settings=settings, now=utc(2026, 12, 5, 10, 1))
    assert [t for t in _posted_texts(factory) if t.startswith("Hint")] == []
    schedule.run_cycle(session_factory=factory, settings=settings, now=utc(2026, 12, 7, 10, 1))
    posted = [t for t in _posted_texts(factory) if t.startswith("Hint")]
    assert posted == ["Hint 1 for Alpha palindromes: Look at L1H0."]


def test_edit_and_cancel_after_release_time_are_refused_clearly(
    factory, settings, round_id
) -> None:
    with session_scope(factory) as s:
        hint_id = hints.add(
            session=s,
            round_id=round_id,
            text="x",
            release_at=utc(2026, 12, 5, 10),
            now=NOW,
            settings=settings,
        ).id
    due = utc(2026, 12, 5, 10, 0, 5)
    # Due but the scheduler has not run yet: already refused.
    with (
        session_scope(factory) as s,
        pytest.raises(HintError, match=f"hint #{hint_id} is due since .* no longer be edited"),
    ):
        hints.edit(session=s, hint_id=hint_id, now=due, text="y", settings=settings)
    schedule.run_cycle(session_factory=factory, settings=settings, now=due)
    with session_scope(factory) as s:
        with pytest.raises(
            HintError,
            match=rf"hint #{hint_id} was released at Sat 05 Dec 2026 11:00 CET; it can no longer be edited",
        ):
            hints.edit(session=s, hint_id=hint_id, now=due, text="y", settings=settings)
        with pytest.raises(HintError, match="was released at .* no longer be cancelled"):
            hints.cancel(session=s, hint_id=hint_id, now=due, settings=settings)
        with pytest.raises(HintError, match="was released at"):
            hint_admin.admin_hint_command(
                session=s, text=f"cancel {hint_id}", actor_id=ADMIN, now=due, settings=settings
            )
    assert _posted_texts(factory)[-1] == "Hint 1 for Alpha palindromes: x"


def test_add_refusals(factory, settings, round_id) -> None:
    with session_scope(factory) as s:
        with pytest.raises(HintError, match="in the past"):
            hints.add(session=s, round_id=round_id, text="x", release_at=utc(2026, 11, 1), now=NOW)
        with pytest.raises(HintError, match="outside round"):
            hints.add(session=s, round_id=round_id, text="x", release_at=utc(2027, 3, 1), now=NOW)
        with pytest.raises(HintError, match="needs some text"):
            hints.add(session=s, round_id=round_id, text="  ", release_at=utc(2026, 12, 9), now=NOW)


def test_hint_modal_round_trip(factory, settings, round_id) -> None:
    with session_scope(factory) as s:
        round_ = rounds.require(session=s, round_id=round_id)
        view = build_hint_modal(round_=round_, tz_name=TZ)
    picker = view["blocks"][1]["element"]
    assert picker["type"] == "datetimepicker"
    # What Slack sends back on submit.
    view["state"] = {
        "values": {
            "release_at": {"value": {"type": "datetimepicker", "selected_date_time": 1796400000}},
            "text": {"value": {"type": "plain_text_input", "value": "From the modal"}},
        }
    }
    rid, hint_id, release_at, text = read_hint_modal(view)
    assert (rid, hint_id, text) == (round_id, None, "From the modal")
    with session_scope(factory) as s:
        hint = hints.save_from_modal(
            session=s,
            round_id=rid,
            hint_id=hint_id,
            release_at=release_at,
            text=text,
            actor_id=ADMIN,
            now=NOW,
            settings=settings,
        )
        assert hint.release_at == release_at == utc(2026, 12, 4, 16)
        edit_view = build_hint_modal(round_=hint.round, tz_name=TZ, hint=hint)
        assert edit_view["private_metadata"] == f"{round_id}:{hint.id}"
        assert edit_view["blocks"][2]["element"]["initial_value"] == "From the modal"
