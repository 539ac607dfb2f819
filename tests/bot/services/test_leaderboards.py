"""Round and all-time leaderboards on SQLite and PostgreSQL: ranking, ties, re-verification, reveal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.leaderboards import World

from bot.services import credits, leaderboard_cache, leaderboards
from storage.models import Admin, RoundStatus, SubmissionStatus


@pytest.fixture
def world(database_url):
    w = World(database_url)
    yield w
    w.close()


def _order(board) -> list[tuple[int, str]]:
    return [(e.rank, e.user_id) for e in board.entries]


def test_ranking_by_checks_then_score_then_earliest_with_ties(world):
    r = world.round()
    world.submit(r, "UCHECK1", hours=0, verdicts=[(1, False, 9.0, 9.0)])  # fewer checks
    world.submit(r, "ULOW", hours=1, verdicts=[(2, True, 0.5, 0.5)])
    world.submit(r, "UEARLY", hours=2, verdicts=[(2, True, 0.9, 0.1)])
    world.submit(r, "ULATE", hours=3, verdicts=[(2, True, 0.9, 0.9)])  # same score, later
    world.submit(r, "UTIE1", hours=4, verdicts=[(2, True, 0.7, None)])
    world.submit(r, "UTIE2", hours=4, verdicts=[(2, True, 0.7, None)])  # identical key: same rank
    world.submit(r, "UNOSCORE", hours=0, verdicts=[(2, True, None, None)])  # nulls rank last
    # Several submissions: the best counts, attempts and latest status are the user's.
    world.submit(r, "UMANY", hours=1, verdicts=[(0, False, 0.1, 0.1)])
    world.submit(r, "UMANY", hours=5, verdicts=[(2, True, 0.6, 0.6)])
    world.submit(r, "UMANY", hours=6, status=SubmissionStatus.RUNNING)
    # Never ranked: cancelled, pending, and uploads after the round closed.
    world.submit(
        r, "UCANCEL", hours=1, verdicts=[(2, True, 99.0, 99.0)], status=SubmissionStatus.CANCELLED
    )
    world.submit(r, "UPENDING", hours=1)
    world.submit(r, "ULATECOMER", hours=24 * 31, verdicts=[(2, True, 99.0, 99.0)])
    world.session.commit()

    board = leaderboards.round_leaderboard(
        session=world.session, round_id=r.id, now=r.opens_at + timedelta(days=1)
    )
    assert _order(board) == [
        (1, "UEARLY"),
        (2, "ULATE"),
        (3, "UTIE1"),
        (3, "UTIE2"),
        (5, "UMANY"),
        (6, "ULOW"),
        (7, "UNOSCORE"),
        (8, "UCHECK1"),
    ]
    many = board.entry_for("UMANY")
    assert many.attempts == 3 and many.latest_status == SubmissionStatus.RUNNING
    assert many.public_score == 0.6
    assert board.pending_users == ["UPENDING"]
    assert board.participants == 11 and board.submissions == 13
    assert all(e.private_score is None for e in board.entries)  # open round: hidden


def test_reverification_changes_rank_newest_verdict_counts(world):
    r = world.round()
    first = world.submit(r, "UFIRST", hours=1, verdicts=[(2, True, 0.9, 0.9)])
    world.submit(r, "USECOND", hours=2, verdicts=[(2, True, 0.8, 0.8)])
    third = world.submit(r, "UTHIRD", hours=3, verdicts=[(1, False, 0.99, 0.99)])
    world.session.commit()
    now = r.opens_at + timedelta(days=1)
    board = leaderboards.round_leaderboard(session=world.session, round_id=r.id, now=now)
    assert [e.user_id for e in board.entries] == ["UFIRST", "USECOND", "UTHIRD"]

    world.verdict(first, 1, False, 0.2, 0.2)  # re-verified: fails the circuit check now
    world.verdict(third, 2, True, 0.95, 0.95)  # re-verified: passes now
    world.session.commit()
    board = leaderboards.round_leaderboard(session=world.session, round_id=r.id, now=now)
    assert [e.user_id for e in board.entries] == ["UTHIRD", "USECOND", "UFIRST"]
    assert board.entry_for("UFIRST").public_score == 0.2
    assert board.solvers == 2
    solved = leaderboards.all_time_leaderboard(session=world.session, now=now)
    assert {e.user_id for e in solved.entries} == {"UTHIRD", "USECOND"}

    # An admin cancels a verified submission: both boards drop it (the caches notice).
    third.status = SubmissionStatus.CANCELLED
    world.session.commit()
    board = leaderboards.round_leaderboard(session=world.session, round_id=r.id, now=now)
    assert [e.user_id for e in board.entries] == ["USECOND", "UFIRST"]
    solved = leaderboards.all_time_leaderboard(session=world.session, now=now)
    assert [e.user_id for e in solved.entries] == ["USECOND"]


def test_private_scores_revealed_and_ranked_only_once_the_round_closes(world):
    r = world.round()
    world.submit(r, "UPUBLIC", hours=1, verdicts=[(2, True, 0.9, 0.5)])  # tuned to the public set
    world.submit(r, "UHONEST", hours=2, verdicts=[(2, True, 0.8, 0.85)])
    world.session.commit()

    during = leaderboards.round_leaderboard(
        session=world.session, round_id=r.id, now=r.closes_at - timedelta(seconds=1)
    )
    assert not during.revealed
    assert [e.user_id for e in during.entries] == ["UPUBLIC", "UHONEST"]
    assert [e.private_score for e in during.entries] == [None, None]

    after_time = leaderboards.round_leaderboard(
        session=world.session, round_id=r.id, now=r.closes_at
    )
    assert after_time.revealed
    assert [(e.user_id, e.private_score) for e in after_time.entries] == [
        ("UHONEST", 0.85),
        ("UPUBLIC", 0.5),
    ]

    r.status = RoundStatus.CLOSED  # an admin closed it early
    world.session.commit()
    early = leaderboards.round_leaderboard(
        session=world.session, round_id=r.id, now=r.opens_at + timedelta(days=2)
    )
    assert early.revealed and early.entries[0].user_id == "UHONEST"


def test_a_lower_is_better_score_from_the_catalog_ranks_lowest_first(world, tmp_path, monkeypatch):
    entry = tmp_path / "catalog" / "lossy"
    entry.mkdir(parents=True)
    (entry / "puzzle.toml").write_text(
        'slug = "lossy"\ntitle = "Lossy"\n[verify]\nchecks = ["replication", "circuit"]\nmetric = "loss"\n'
        'score_name = "loss"\nscore_higher_is_better = false\n'
    )
    monkeypatch.setenv("CIRCUITBOARD_CATALOG_PATH", str(tmp_path / "catalog"))
    r = world.round(puzzle=world.puzzle("lossy", "Lossy"))
    world.submit(r, "UHIGH", hours=1, verdicts=[(2, True, 0.9, 0.9)])
    world.submit(r, "ULOW", hours=2, verdicts=[(2, True, 0.1, 0.1)])
    world.session.commit()
    board = leaderboards.round_leaderboard(
        session=world.session, round_id=r.id, now=r.opens_at + timedelta(days=1)
    )
    assert board.rule.metric == "loss" and board.rule.checks_total == 2
    assert [e.user_id for e in board.entries] == ["ULOW", "UHIGH"]


def test_all_time_credits_rounds_solved_and_streaks(world):
    rounds = [world.round(month=m, status=RoundStatus.CLOSED) for m in range(4)]
    cancelled = world.round(month=4, status=RoundStatus.CANCELLED)
    open_round = world.round(month=5, status=RoundStatus.OPEN)
    ok = [(2, True, 0.9, 0.9)]
    # UALICE solves rounds 0, 1, 3 (and the open one): longest 2, current 2 (3 + open).
    for r in (rounds[0], rounds[1], rounds[3], open_round):
        world.submit(r, "UALICE", verdicts=ok)
    # UBOB solves 1, 2, 3; the open round not yet: his current streak of 3 is not broken.
    bobs = [world.submit(r, "UBOB", verdicts=ok) for r in rounds[1:]]
    # UCAROL solved round 0 only; her round-2 pass was overturned by re-verification.
    world.submit(rounds[0], "UCAROL", verdicts=ok)
    world.submit(rounds[2], "UCAROL", verdicts=[ok[0], (1, False, 0.3, 0.3)])
    world.submit(cancelled, "UCAROL", verdicts=ok)  # cancelled rounds count for nothing
    world.user("UADMIN")
    world.session.add(Admin(user_id="UADMIN"))
    world.user("UDAVE")
    world.session.flush()
    credits.award(
        session=world.session,
        actor_id="UADMIN",
        round_id=rounds[0].id,
        user_id="UCAROL",
        kind="best",
    )
    revoked = credits.award(
        session=world.session, actor_id="UADMIN", round_id=rounds[1].id, user_id="UBOB", kind="best"
    )
    credits.revoke(session=world.session, actor_id="UADMIN", credit_id=revoked.id)
    credits.award(
        session=world.session,
        actor_id="UADMIN",
        round_id=rounds[1].id,
        user_id="UDAVE",
        kind="mention",
    )
    world.session.commit()

    board = leaderboards.all_time_leaderboard(
        session=world.session, now=open_round.opens_at + timedelta(days=1)
    )
    got = {
        e.user_id: (
            e.rank,
            e.best_solutions,
            e.honourable_mentions,
            e.rounds_solved,
            e.current_streak,
            e.longest_streak,
        )
        for e in board.entries
    }
    assert got == {
        "UCAROL": (1, 1, 0, 1, 0, 1),
        "UDAVE": (2, 0, 1, 0, 0, 0),
        "UALICE": (3, 0, 0, 4, 2, 2),
        "UBOB": (4, 0, 0, 3, 3, 3),
    }
    assert board.rounds_counted == 5  # four closed + the open one; the cancelled one is skipped

    # Once the open round closes without Bob solving it, his current streak is over.
    later = leaderboards.all_time_leaderboard(
        session=world.session, now=open_round.closes_at + timedelta(days=1)
    )
    bob = next(e for e in later.entries if e.user_id == "UBOB")
    assert (bob.current_streak, bob.longest_streak) == (0, 3)
    # Before any verdict in the open round, the boards during and after it differ only by time.
    empty = world.round(month=6)
    world.session.commit()
    for now, streak in ((empty.opens_at + timedelta(days=1), 2), (empty.closes_at, 0)):
        alice = next(
            e
            for e in leaderboards.all_time_leaderboard(session=world.session, now=now).entries
            if e.user_id == "UALICE"
        )
        assert alice.current_streak == streak
    assert [
        e.user_id for e in leaderboards.all_time_leaderboard(session=world.session, limit=2).entries
    ] == [
        "UCAROL",
        "UDAVE",
    ]

    # Verdicts after the cached computation: in a closed round (an admin re-verified Bob's
    # round-2 solution, which now fails), then in the open round (Bob solves it).
    during = open_round.opens_at + timedelta(days=1)
    world.verdict(bobs[1], 1, False, 0.2, 0.2)
    world.session.commit()
    bob = next(
        e
        for e in leaderboards.all_time_leaderboard(session=world.session, now=during).entries
        if e.user_id == "UBOB"
    )
    assert (bob.rounds_solved, bob.current_streak, bob.longest_streak) == (2, 1, 1)
    world.submit(open_round, "UBOB", verdicts=ok)
    world.session.commit()
    bob = next(
        e
        for e in leaderboards.all_time_leaderboard(session=world.session, now=during).entries
        if e.user_id == "UBOB"
    )
    assert (bob.rounds_solved, bob.current_streak, bob.longest_streak) == (3, 2, 2)


def test_a_verdict_committed_after_one_with_a_higher_id_still_refreshes_the_boards(world):
    """Two workers: ids are handed out in one order, commits land in the other."""
    from storage.models import Verdict

    r = world.round()
    slow = world.submit(r, "USLOW", hours=1)
    fast = world.submit(r, "UFAST", hours=2)
    world.session.add(
        Verdict(
            submission_id=fast.id, attempt=1, passed=True, checks_passed=2, public_score=0.5, id=10
        )
    )
    world.session.commit()
    now = r.opens_at + timedelta(days=1)
    assert [
        e.user_id
        for e in leaderboards.round_leaderboard(
            session=world.session, round_id=r.id, now=now
        ).entries
    ] == ["UFAST"]
    assert [
        e.user_id for e in leaderboards.all_time_leaderboard(session=world.session, now=now).entries
    ] == ["UFAST"]
    world.session.add(
        Verdict(
            submission_id=slow.id, attempt=1, passed=True, checks_passed=2, public_score=0.9, id=5
        )
    )
    world.session.commit()
    board = leaderboards.round_leaderboard(session=world.session, round_id=r.id, now=now)
    assert [e.user_id for e in board.entries] == ["USLOW", "UFAST"]
    everyone = leaderboards.all_time_leaderboard(session=world.session, now=now)
    assert {e.user_id for e in everyone.entries} == {"USLOW", "UFAST"}


def test_new_verdicts_are_noticed_over_the_newest_id_window(sqlite_url):
    from storage.models import Verdict

    world = World(sqlite_url)
    try:
        r = world.round()
        sub = world.submit(r, "UA")
        other = world.submit(world.round(month=1), "UB")
        for attempt, vid in ((1, 1500), (2, 2500)):
            world.session.add(Verdict(submission_id=sub.id, attempt=attempt, passed=False, id=vid))
        world.session.commit()
        assert leaderboard_cache.VERDICT_WINDOW == 1000
        assert leaderboard_cache.verdict_marks(world.session, r.id) == (1000, 2, 2)
        # Committed late with an id below the newest: still counted, so caches notice it.
        world.session.add(Verdict(submission_id=other.id, attempt=1, passed=True, id=1200))
        world.session.commit()
        assert leaderboard_cache.verdict_marks(world.session, r.id) == (1000, 3, 2)
        # The window moves on: the start itself changes, so every cached board is recomputed.
        world.session.add(Verdict(submission_id=sub.id, attempt=3, passed=True, id=3001))
        world.session.commit()
        assert leaderboard_cache.verdict_marks(world.session, r.id)[0] == 2000
    finally:
        world.close()


def test_all_time_counts_only_the_newest_verdict_of_an_in_time_submission(world):
    """Who solved a round reads the stored newest-verdict marker: a pass later re-verified as a
    failure stops counting, a failure re-verified as a pass starts, and a pass on a submission
    made after the round closed (a late upload) never counts."""
    closed = world.round(status=RoundStatus.SOLUTIONS_POSTED)
    world.submit(closed, "UFLIP", verdicts=[(2, True, 0.9, 0.9), (1, False, 0.4, 0.4)])
    world.submit(closed, "URISE", verdicts=[(1, False, 0.4, 0.4), (2, True, 0.9, 0.9)])
    world.submit(closed, "ULATE", hours=31 * 24, verdicts=[(2, True, 0.9, 0.9)])
    world.submit(closed, "UKEPT", verdicts=[(2, True, 0.9, 0.9)])
    world.session.commit()
    leaderboards.clear_cache()
    board = leaderboards.all_time_leaderboard(
        session=world.session, now=closed.closes_at + timedelta(days=1)
    )
    assert {e.user_id: e.rounds_solved for e in board.entries} == {"URISE": 1, "UKEPT": 1}
