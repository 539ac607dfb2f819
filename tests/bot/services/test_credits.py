"""Credits on SQLite and PostgreSQL: one best per round unless joint, revocation, admins only, audit."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select
from support.leaderboards import World

from bot.services import credits, leaderboards
from storage.models import Admin, AuditLog, CreditKind, SubmissionStatus


@pytest.fixture
def world(database_url):
    w = World(database_url)
    w.user("UADMIN")
    w.session.add(Admin(user_id="UADMIN"))
    w.session.commit()
    yield w
    w.close()


def _award(world, user_id, kind="best", **kwargs):
    return credits.award(
        session=world.session,
        actor_id="UADMIN",
        round_id=kwargs.pop("round_id"),
        user_id=user_id,
        kind=kind,
        **kwargs,
    )


def test_one_best_per_round_unless_joint_and_revocation_frees_the_slot(world):
    r = world.round()
    sub = world.submit(
        r, "UWIN", verdicts=[(2, True, 0.9, 0.9)], writeup_url="https://example.org/w"
    )
    best = _award(world, "UWIN", round_id=r.id, note="clean circuit", submission_id=sub.id)
    assert best.kind == CreditKind.BEST_SOLUTION and best.link == "https://example.org/w"
    mention = _award(world, "UOTHER", "mention", round_id=r.id, link="<https://x.org/p|post>")
    assert mention.link == "https://x.org/p"
    world.session.commit()

    with pytest.raises(credits.CreditError, match="already has a best solution .*<@UWIN>"):
        _award(world, "UOTHER", round_id=r.id)
    with pytest.raises(credits.CreditError, match="already has a best solution"):
        _award(world, "UOTHER", round_id=r.id, joint=True)  # the existing best is not joint
    with pytest.raises(credits.CreditError, match="already holds a honourable mention"):
        _award(world, "UOTHER", "mention", round_id=r.id)
    with pytest.raises(credits.CreditError, match="unknown credit kind"):
        _award(world, "UOTHER", "gold", round_id=r.id)
    with pytest.raises(credits.CreditError, match="http"):
        _award(world, "UOTHER", "mention", round_id=world.round(month=1).id, link="javascript:x")
    with pytest.raises(credits.CreditError, match="not <@UOTHER>'s submission"):
        _award(world, "UOTHER", "mention", round_id=r.id, submission_id=sub.id)

    credits.revoke(session=world.session, actor_id="UADMIN", credit_id=best.id, reason="mistake")
    with pytest.raises(credits.CreditError, match="already revoked"):
        credits.revoke(session=world.session, actor_id="UADMIN", credit_id=best.id)
    a = _award(world, "UWIN", round_id=r.id, joint=True)
    b = _award(world, "UOTHER", round_id=r.id, joint=True)
    world.session.commit()
    assert [c.id for c in credits.for_round(session=world.session, round_id=r.id)] == [
        a.id,
        b.id,
        mention.id,
    ]
    assert len(credits.for_round(session=world.session, round_id=r.id, include_revoked=True)) == 4
    with pytest.raises(credits.CreditError, match="already has a best solution"):
        _award(world, "UTHIRD", round_id=r.id)  # non-joint next to joint ones
    actions = world.session.scalars(
        select(AuditLog.action).where(AuditLog.allowed.is_(True)).order_by(AuditLog.id)
    ).all()
    assert actions == [
        "credit.award",
        "credit.award",
        "credit.revoke",
        "credit.award",
        "credit.award",
    ]


def test_revoked_credits_leave_the_all_time_leaderboard(world):
    r = world.round()
    world.session.commit()
    best = _award(world, "UWIN", round_id=r.id)
    world.session.commit()
    board = leaderboards.all_time_leaderboard(session=world.session, now=r.closes_at)
    assert [(e.user_id, e.best_solutions) for e in board.entries] == [("UWIN", 1)]
    credits.revoke(session=world.session, actor_id="UADMIN", credit_id=best.id)
    world.session.commit()
    board = leaderboards.all_time_leaderboard(session=world.session, now=r.closes_at)
    assert board.entries == []


def test_non_admins_are_refused_and_the_refusal_is_audited(world):
    r = world.round()
    world.session.commit()
    with pytest.raises(credits.NotAllowed):
        credits.award(
            session=world.session, actor_id="UNOBODY", round_id=r.id, user_id="UNOBODY", kind="best"
        )
    world.session.rollback()  # what session_scope does with the exception
    refused = world.session.scalars(select(AuditLog).where(AuditLog.allowed.is_(False))).all()
    assert [(a.actor_id, a.action, a.target) for a in refused] == [
        ("UNOBODY", "credit.award", f"round:{r.id}:user:UNOBODY")
    ]


def test_admins_from_settings_may_award(world, monkeypatch):
    from bot.settings import get_settings

    monkeypatch.setenv("CIRCUITBOARD_ADMINS", "UCONFIGURED")
    get_settings.cache_clear()
    r = world.round()
    credit = credits.award(
        session=world.session, actor_id="UCONFIGURED", round_id=r.id, user_id="UX", kind="mention"
    )
    assert credit.awarded_by == "UCONFIGURED"


@pytest.mark.postgres
def test_a_racing_second_best_hits_the_index_and_gets_the_same_message(postgres_url):
    """Two admins at once: the second passed the check before the first committed."""
    world = World(postgres_url)
    try:
        world.user("UADMIN")
        world.session.add(Admin(user_id="UADMIN"))
        r = world.round()
        world.user("UFIRST")
        world.user("USECOND")
        world.session.commit()
        other = world.factory()

        def first_admin_commits(conn, cursor, statement, *args):
            if statement.startswith("INSERT INTO credits") and not other.info.get("done"):
                other.info["done"] = True
                credits.award(
                    session=other, actor_id="UADMIN", round_id=r.id, user_id="UFIRST", kind="best"
                )
                other.commit()

        event.listen(world.engine, "before_cursor_execute", first_admin_commits)
        try:
            with pytest.raises(
                credits.CreditError, match="already has a best solution .*<@UFIRST>"
            ):
                _award(world, "USECOND", round_id=r.id)
        finally:
            event.remove(world.engine, "before_cursor_execute", first_admin_commits)
        world.session.commit()  # the savepoint kept the outer transaction usable
        other.close()
        held = credits.for_round(session=world.session, round_id=r.id)
        assert [c.user_id for c in held] == ["UFIRST"]
    finally:
        world.close()


def test_a_submission_that_declares_no_variables_cannot_be_best_solution(world):
    """A task rule / weight copy / v1 file has no causal score: refused as best, fine as mention."""
    r = world.round()
    rule = world.submit(r, "URULE", verdicts=[(2, True, 0.99, 0.99, None)])
    with pytest.raises(credits.CreditError, match="declare no variables .*honourable mention"):
        _award(world, "URULE", round_id=r.id)
    with pytest.raises(credits.CreditError, match=f"submission {rule.id} declares no variables"):
        _award(world, "URULE", round_id=r.id, submission_id=rule.id)
    assert _award(world, "URULE", "mention", round_id=r.id).kind == CreditKind.HONOURABLE_MENTION
    queued = world.submit(r, "UQUEUED")
    with pytest.raises(credits.CreditError, match="no verdict yet"):
        _award(world, "UQUEUED", round_id=r.id, submission_id=queued.id)
    # Only the newest verdict counts: a re-verification that lost the hypothesis loses the right.
    v2 = world.submit(r, "UV2", verdicts=[(3, True, 0.9, 0.9, 0.93)])
    world.verdict(v2, 2, True, 0.9, 0.9, None)
    with pytest.raises(credits.CreditError, match="declares no variables"):
        _award(world, "UV2", round_id=r.id, submission_id=v2.id)
    # A cancelled submission with a hypothesis does not count; another verified one does.
    world.submit(
        r, "UV2", hours=3, verdicts=[(3, True, 0.9, 0.9, 0.95)], status=SubmissionStatus.CANCELLED
    )
    with pytest.raises(credits.CreditError, match="UV2>'s verified submissions"):
        _award(world, "UV2", round_id=r.id)
    world.submit(r, "UV2", hours=2, verdicts=[(3, True, 0.9, 0.9, 0.95)])
    assert _award(world, "UV2", round_id=r.id).kind == CreditKind.BEST_SOLUTION
