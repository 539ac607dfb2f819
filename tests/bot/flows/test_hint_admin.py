"""`/puzzle admin hint ...`: add, list, edit, cancel, release, and refusals that say why."""

from __future__ import annotations

import pytest
from support.cycle_fixtures import PLANNED_AT
from support.scheduler import ADMIN, utc

from bot.flows import hint_admin
from bot.services import hints
from bot.services.hints import HintError
from storage.db import session_scope
from storage.models import HintStatus

pytestmark = pytest.mark.usefixtures("catalog")  # the test catalog (conftest)

NOW = PLANNED_AT  # when the round_id fixture planned the round: a Wednesday, 13:00 in Berlin


def test_admin_hint_command(factory, settings, round_id) -> None:
    during = utc(2026, 12, 2, 12)

    def run(text: str) -> str:
        with session_scope(factory) as s:
            return hint_admin.admin_hint_command(
                session=s, text=text, actor_id=ADMIN, now=during, settings=settings
            )

    reply = run('add "2026-12-09 18:30" Think about *where* the MLP reads.')
    assert reply.startswith("Scheduled hint #1 (round #1): scheduled Wed 09 Dec 2026 18:30 CET")
    assert "in 3 days" not in reply
    assert run("add “in 3 days” Second hint").startswith("Scheduled hint #2")
    assert "hint #1" in run("list") and "hint #2" in run("list 1")
    assert "Mon 14 Dec 2026 09:00 CET" in run('edit 1 time "2026-12-14 09:00"')
    assert "new words" in run("edit 1 text new words")
    assert run("cancel 2").startswith("Cancelled hint #2")
    with pytest.raises(HintError, match="scheduled for"):
        run("release 1")
    with pytest.raises(HintError, match="say when and what"):
        run('add "tomorrow"')
    with pytest.raises(HintError, match="unknown hint command"):
        run("frob")
    with session_scope(factory) as s:
        hint = hints.require(session=s, hint_id=1)
        assert hint.created_by == ADMIN and hint.status == HintStatus.SCHEDULED
