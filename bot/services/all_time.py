"""The all-time leaderboard: credits, rounds solved and streaks of consecutive rounds solved.

Who solved each closed round is cached apart from the open round, so a verdict in the open round
re-reads only that round (see ``leaderboard_cache.verdict_marks`` for how new verdicts are noticed).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, distinct, func, literal, select
from sqlalchemy.orm import Session

from bot.services.leaderboard_cache import (
    bind_key,
    by_user,
    cache_get,
    cache_put,
    credit_marks,
    excluded_counts,
    verdict_marks,
)
from bot.services.leaderboard_data import (
    EXCLUDED_STATUSES,
    AllTimeEntry,
    AllTimeLeaderboard,
    is_revealed,
)
from storage.models import Credit, CreditKind, Round, RoundStatus, SlackUser, Submission, utcnow


def _counted_rounds(*, session: Session, now: datetime) -> list[Round]:
    """Rounds that have opened and were not cancelled, oldest first: the sequence streaks run over."""
    return list(
        session.scalars(
            select(Round)
            .where(Round.status != RoundStatus.CANCELLED, Round.opens_at <= now)
            .order_by(Round.opens_at, Round.id)
        )
    )


ALL_TIME_DEFAULT_LIMIT = 100


def all_time_leaderboard(
    *, session: Session, now: datetime | None = None, limit: int | None = ALL_TIME_DEFAULT_LIMIT
) -> AllTimeLeaderboard:
    """Credits, rounds solved and streaks of consecutive rounds solved: the top ``limit`` users.

    ``limit=None`` returns everyone who has a solve or a credit.

    A round is solved by a user when the newest verdict of one of their submissions passed. The
    current streak is not broken by the open round the user has not solved yet.

    Who solved each closed round is cached apart from the open round, so a verdict in the open
    round re-reads only that round (see ``verdict_marks`` for how new verdicts are noticed).
    """
    now = now or utcnow()
    rounds = _counted_rounds(session=session, now=now)
    latest_open = bool(rounds) and not is_revealed(rounds[-1], now=now)
    open_round = rounds[-1] if latest_open else None
    marks = _Marks.read(session, rounds, open_round)
    key = ("all-time", marks.bind, marks.rounds_key, latest_open, limit, marks.fingerprint)
    shown = cache_get(key)
    if shown is None:
        closed = _closed_rounds_streaks(session, rounds, open_round, marks)
        open_solvers = None if open_round is None else _open_solvers(session, open_round, marks)
        shown = _rank_all_time(session, closed, open_solvers, limit)
        cache_put(key, shown)
    return AllTimeLeaderboard(
        entries=_entries(session, shown, limit=limit), rounds_counted=len(rounds)
    )


@dataclass(frozen=True)
class _Marks:
    """What the all-time board's cache keys are made of (see ``leaderboard_cache``)."""

    bind: str
    rounds_key: tuple[Any, ...]
    window: int
    recent: int
    recent_open: int
    excluded_total: int
    excluded_open: int
    credits: tuple[Any, ...]

    @classmethod
    def read(cls, session: Session, rounds: list[Round], open_round: Round | None) -> _Marks:
        open_id = open_round.id if open_round is not None else None
        window, recent, recent_open = verdict_marks(session, open_id)
        excluded_total, excluded_open = excluded_counts(session, open_id)
        return cls(
            bind=bind_key(session),
            rounds_key=tuple((r.id, r.status.value, r.opens_at, r.closes_at) for r in rounds),
            window=window,
            recent=recent,
            recent_open=recent_open,
            excluded_total=excluded_total,
            excluded_open=excluded_open,
            credits=credit_marks(session),
        )

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        return (
            self.window,
            self.recent,
            self.recent_open,
            self.excluded_total,
            self.excluded_open,
            self.credits,
        )


def _closed_rounds_streaks(
    session: Session, rounds: list[Round], open_round: Round | None, marks: _Marks
) -> dict[str, tuple[int, int, int]]:
    """``_closed_streaks`` of every counted round but the open one, cached on their own."""
    closed_rounds = [r for r in rounds if r is not open_round]
    closed_key = (
        "solved-closed",
        marks.bind,
        marks.rounds_key,
        tuple(r.id for r in closed_rounds),  # the counts below are monotonic for one set
        marks.window,
        marks.recent - marks.recent_open,
        marks.excluded_total - marks.excluded_open,
    )
    closed = cache_get(closed_key)
    if closed is None:
        closed = _closed_streaks(closed_rounds, _solvers(session, closed_rounds))
        cache_put(closed_key, closed)
    return closed


def _open_solvers(session: Session, open_round: Round, marks: _Marks) -> frozenset[str]:
    """Who has solved the open round so far (re-read only when a verdict of it arrives)."""
    open_key = (
        "solved-open",
        marks.bind,
        marks.rounds_key,
        open_round.id,
        marks.window,
        marks.recent_open,
        marks.excluded_open,
    )
    solvers = cache_get(open_key)
    if solvers is None:
        solvers = _solvers(session, [open_round])[open_round.id]
        cache_put(open_key, solvers)
    return solvers


def _entries(
    session: Session, shown: tuple[tuple[str, tuple[int, ...]], ...], *, limit: int | None
) -> list[AllTimeEntry]:
    """The ranked rows with display names; equal stats share a rank."""
    names: dict[str, str | None] = {}
    if shown:
        query = select(SlackUser.id, SlackUser.display_name)
        if limit is not None:
            query = query.where(SlackUser.id.in_([user for user, _ in shown]))
        names = dict(session.execute(query).all())
    entries: list[AllTimeEntry] = []
    previous: tuple[int, ...] | None = None
    for position, (user_id, stats) in enumerate(shown, start=1):
        rank = entries[-1].rank if stats == previous else position
        previous = stats
        best, mentions, solved, current, longest = stats
        entries.append(
            AllTimeEntry(
                rank=rank,
                user_id=user_id,
                display_name=names.get(user_id),
                best_solutions=best,
                honourable_mentions=mentions,
                rounds_solved=solved,
                current_streak=current,
                longest_streak=longest,
            )
        )
    return entries


def _solvers(session: Session, rounds: list[Round]) -> dict[int, frozenset[str]]:
    """Who solved each of ``rounds``: a passing newest verdict on an in-time submission."""
    found: dict[int, set[str]] = {r.id: set() for r in rounds}
    if not rounds:
        return {}
    # The stored marker (kept by a trigger on verdicts) instead of finding each submission's
    # newest verdict: an index-only scan of ix_submissions_solved, in (round, user) order. Each
    # round's closing time is a literal CASE rather than a join, which would lose that order.
    closes = case(
        {r.id: literal(r.closes_at, Round.closes_at.type) for r in rounds},
        value=Submission.round_id,
    )
    solved = (
        Submission.round_id.in_(list(found)),
        Submission.newest_verdict_passed == True,  # noqa: E712 (matches the partial index)
        Submission.status.not_in(EXCLUDED_STATUSES),
        Submission.created_at < closes,
    )
    user = by_user(session)
    # One row per round (user ids joined by spaces, which Slack ids never contain): far fewer
    # rows to fetch than one per solver.
    if session.get_bind().dialect.name == "postgresql":
        # Grouped straight off the index (no hash of 30k+ pairs); SQLite's group_concat takes
        # DISTINCT only with one argument, hence the subquery below.
        query = (
            select(Submission.round_id, func.string_agg(distinct(user), " "))
            .where(*solved)
            .group_by(Submission.round_id)
        )
    else:
        pairs = (
            select(Submission.round_id, user.label("user_id")).where(*solved).distinct().subquery()
        )
        query = select(pairs.c.round_id, func.aggregate_strings(pairs.c.user_id, " ")).group_by(
            pairs.c.round_id
        )
    rows = session.execute(query)
    for round_id, users in rows:
        found[round_id].update((users or "").split())
    return {round_id: frozenset(users) for round_id, users in found.items()}


def _closed_streaks(
    rounds: list[Round], solvers: dict[int, frozenset[str]]
) -> dict[str, tuple[int, int, int]]:
    """Per user over ``rounds`` (in order): (rounds solved, longest streak, streak that reaches
    the last of them)."""
    # One bit per round solved (bit i: the i-th round, from 1; bit 0 stays clear): tens of
    # thousands of (round, user) pairs cost one dict update each, then a few int ops per user.
    solved: dict[str, int] = {}
    for index, round_ in enumerate(rounds, start=1):
        bit = 1 << index
        for user_id in solvers.get(round_.id, ()):
            solved[user_id] = solved.get(user_id, 0) | bit
    last = len(rounds)
    full = (1 << (last + 1)) - 1
    streaks: dict[str, tuple[int, int, int]] = {}
    for user_id, mask in solved.items():
        longest, runs = 0, mask
        while runs:  # each pass shortens every run of ones by one
            runs &= runs << 1
            longest += 1
        trailing = last - (full & ~mask).bit_length() + 1  # ones down from the last round
        streaks[user_id] = (mask.bit_count(), longest, trailing)
    return streaks


def _rank_all_time(
    session: Session,
    closed: dict[str, tuple[int, int, int]],
    open_solvers: frozenset[str] | None,
    limit: int | None,
) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(user, (best, mentions, solved, current streak, longest streak)) in leaderboard order.

    ``closed``: ``_closed_streaks`` of the closed rounds; ``open_solvers``: who has solved the
    open round (None when no round is open). Solving the open round extends the streak that
    reached the last closed round; not having solved it yet does not break it.
    """
    totals: dict[str, list[int]] = {
        user_id: [0, 0, solved, trail, longest]
        for user_id, (solved, longest, trail) in closed.items()
    }
    for user_id in open_solvers or ():
        stats = totals.get(user_id)
        if stats is None:
            totals[user_id] = [0, 0, 1, 1, 1]
            continue
        stats[2] += 1
        stats[3] += 1
        stats[4] = max(stats[4], stats[3])

    credit_rows = session.execute(
        select(
            Credit.user_id,
            func.sum(case((Credit.kind == CreditKind.BEST_SOLUTION, 1), else_=0)),
            func.sum(case((Credit.kind == CreditKind.HONOURABLE_MENTION, 1), else_=0)),
        )
        .where(Credit.revoked_at.is_(None))
        .group_by(Credit.user_id)
    )
    for user_id, best, mentions in credit_rows:
        stats = totals.setdefault(user_id, [0, 0, 0, 0, 0])
        stats[0], stats[1] = int(best or 0), int(mentions or 0)

    def order(item: tuple[str, list[int]]) -> tuple[Any, ...]:
        best, mentions, solved, current, longest = item[1]
        return (-best, -mentions, -solved, -longest, -current, item[0])

    items = totals.items()
    ordered = (
        sorted(items, key=order) if limit is None else heapq.nsmallest(limit, items, key=order)
    )
    return tuple((user_id, tuple(stats)) for user_id, stats in ordered)
