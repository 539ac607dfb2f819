"""`/puzzle admin credit`: an explicit round, else the open round, else the last closed one.

On SQLite and PostgreSQL, through ``flows.admin_command.run_admin_command`` (the path Slack, the admin panel
and the console share); every award is audited.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from support.leaderboards import T0, World

from bot.flows import admin_command
from bot.settings import Settings
from storage.models import Admin, AuditLog, Credit, CreditKind, RoundStatus

ADMIN = "UADMIN"


@pytest.fixture
def world(database_url):
    w = World(database_url)
    w.user(ADMIN)
    w.session.add(Admin(user_id=ADMIN))
    w.session.commit()
    w.settings = Settings(database_url=database_url, admins=[])
    yield w
    w.close()


def _admin(world, text: str, *, now, actor: str = ADMIN) -> str:
    answer = admin_command.run_admin_command(
        session=world.session, settings=world.settings, actor_id=actor, text=text, now=now
    )
    world.session.commit()
    return json.dumps(answer, ensure_ascii=False)


def _credits(world) -> list[tuple[int, str, CreditKind, str]]:
    rows = world.session.scalars(select(Credit).order_by(Credit.id))
    return [(c.round_id, c.user_id, c.kind, c.note) for c in rows]


def _awards(world) -> list[tuple[str, str | None, bool]]:
    rows = world.session.scalars(
        select(AuditLog).where(AuditLog.action == "credit.award").order_by(AuditLog.id)
    )
    return [(a.actor_id, a.target, a.allowed) for a in rows]


def test_credit_defaults_to_the_last_closed_round_once_none_is_open(world):
    dec = world.round(month=0, status=RoundStatus.SOLUTIONS_POSTED)
    jan = world.round(month=2, status=RoundStatus.SCHEDULED)  # a gap between the rounds
    world.submit(dec, "UALICE", verdicts=[(2, True, 0.9, 0.95)])
    world.session.commit()
    between = dec.closes_at + timedelta(hours=1)  # December closed, January not open yet
    assert between < jan.opens_at

    reply = _admin(world, 'credit <@UALICE> best "clean circuit"', now=between)
    assert f"Awarded best solution to <@UALICE> for round #{dec.id}" in reply
    assert _credits(world) == [(dec.id, "UALICE", CreditKind.BEST_SOLUTION, "clean circuit")]
    assert _awards(world) == [(ADMIN, f"round:{dec.id}:user:UALICE", True)]

    # Once January is open, the default is January; an explicit round still reaches December.
    world.session.get(type(jan), jan.id).status = RoundStatus.OPEN
    world.session.commit()
    during = jan.opens_at + timedelta(days=2)
    reply = _admin(world, "credit <@UBOB> mention tidy", now=during)
    assert f"for round #{jan.id}" in reply
    reply = _admin(world, f'credit <@UBOB> mention "runner-up" round={dec.id}', now=during)
    assert f"Awarded honourable mention to <@UBOB> for round #{dec.id}" in reply
    reply = _admin(world, f'credit <@UCAROL> mention --round #{dec.id} "also good"', now=during)
    assert f"for round #{dec.id}" in reply
    reply = _admin(world, "credit <@UDAVE> mention round=latest well done", now=during)
    assert f"for round #{dec.id}" in reply
    assert _credits(world)[1:] == [
        (jan.id, "UBOB", CreditKind.HONOURABLE_MENTION, "tidy"),
        (dec.id, "UBOB", CreditKind.HONOURABLE_MENTION, "runner-up"),
        (dec.id, "UCAROL", CreditKind.HONOURABLE_MENTION, "also good"),
        (dec.id, "UDAVE", CreditKind.HONOURABLE_MENTION, "well done"),
    ]
    assert [target for _, target, _ in _awards(world)] == [
        f"round:{dec.id}:user:UALICE",
        f"round:{jan.id}:user:UBOB",
        f"round:{dec.id}:user:UBOB",
        f"round:{dec.id}:user:UCAROL",
        f"round:{dec.id}:user:UDAVE",
    ]
    # The closed round's rules still hold: a second best solution is refused.
    reply = _admin(world, f"credit <@UBOB> best round={dec.id}", now=during)
    assert "already has a best solution" in reply
    assert len(_credits(world)) == 5


def test_credit_round_errors_are_told_and_members_are_refused(world):
    now = T0 - timedelta(days=1)  # before any round
    reply = _admin(world, "credit <@UALICE> best", now=now)
    assert "no round to credit" in reply
    cancelled = world.round(month=0, status=RoundStatus.CANCELLED)
    world.session.commit()
    after = cancelled.closes_at + timedelta(days=1)
    assert "no round #999 to credit" in _admin(world, "credit <@UALICE> best round=999", now=after)
    reply = _admin(world, f"credit <@UALICE> best round={cancelled.id}", now=after)
    assert "was cancelled" in reply
    assert "needs a round id" in _admin(world, "credit <@UALICE> best --round", now=after)
    assert "give the round once" in _admin(
        world, "credit <@UALICE> best round=1 --round 2", now=after
    )
    assert _credits(world) == []

    closed = world.round(month=1, status=RoundStatus.CLOSED)
    world.session.commit()
    later = closed.closes_at + timedelta(days=1)
    reply = _admin(world, f"credit <@UMALLORY> best round={closed.id}", now=later, actor="UMALLORY")
    assert "Only puzzle admins" in reply
    assert _credits(world) == []
    refused = world.session.scalars(select(AuditLog).where(AuditLog.allowed.is_(False))).all()
    assert [(a.actor_id, a.action) for a in refused] == [("UMALLORY", "admin.credit")]
